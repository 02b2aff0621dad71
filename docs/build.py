"""Build the documentation site offline: nbdev-processed notebooks -> Sphinx + MyST-NB -> `_docs/`.

`make docs` runs this. Where Quarto is installed, `nbdev-docs` builds the standard site from the same notebooks
(`nbs/_quarto.yml`); this path needs neither Quarto nor any network access:

1. process: `nbs/*.ipynb` -> `_proc/*.ipynb` with nbdev's own notebook processors, the ones `nbdev-proc-nbs` applies
   (frontmatter from the first heading, `#| hide`, `#| export`, automatic and explicit `show_doc`, doc links). It calls
   the processors directly because the `nbdev-proc-nbs` command first tries to install Quarto and rewrites
   `nbs/sidebar.yml` and `robustsparsesnn/_modidx.py`. One difference, on purpose: nbdev executes every cell that
   contains an import, so a cell that imports and then trains a model reruns at build time. Here only what
   `show_doc` needs runs (exported cells, import-only cells, `show_doc` cells); every other cell keeps the
   outputs saved in the notebook, so the figures are those the notebooks show.
2. stage: `_proc/*.ipynb` -> `_proc/.sphinx/src/<page>.ipynb` for MyST-NB: the nbdev frontmatter becomes the page's
   title heading (the notebook's first markdown heading) and description, Quarto cell options (`#| echo: false`,
   `#| output: false`, `#| include: false`) become MyST-NB tags, links to the online docs become links between
   local pages, and `index` gets the navigation in notebook order. Pages are named like nbdev's
   (`01c_neurons.ipynb` -> `neurons.html`). MathJax 3 (from the `django-static-mathjax` wheel, fonts included) is
   copied beside them, so equations typeset without a CDN.
3. render: `sphinx-build` (config in `docs/conf.py`, Furo theme, built-in search) -> `_docs/`. Incremental: a
   second run only re-reads the notebooks that changed.

Usage: `python docs/build.py [--force] [-j N]`, from anywhere; the output is `_docs/index.html`.
"""
import argparse, ast, html, json, multiprocessing as mp, os, re, shutil, subprocess, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROC = ROOT/'_proc'                      # nbdev's processed notebooks (the same folder `nbdev-proc-nbs` writes)
STAGE = PROC/'.sphinx'                   # dot-folder: nbdev and Quarto skip it
SRC, DOCTREES, STATIC = STAGE/'src', STAGE/'doctrees', STAGE/'static'
OUT = ROOT/'_docs'
_SHOW_DIRS = {'export', 'exports', 'exporti', 'exec_doc'}


# ---- 1. nbdev processing --------------------------------------------------------------------------------------
def _only_imports(trees):
    return bool(trees) and all(isinstance(t, (ast.Import, ast.ImportFrom)) for t in trees)


def _docs_procs():
    "nbdev's `FilterDefaults` with `exec_show_docs` restricted to the cells `show_doc` needs (see the module doc)"
    from nbdev.processors import FilterDefaults, exec_show_docs, _do_eval, _show_docs

    class exec_show_docs_saved(exec_show_docs):
        def __call__(self, cell):
            if cell.cell_type == 'code' and _do_eval(cell):
                trees = cell.parsed_() or []
                if not (cell.directives_.keys() & _SHOW_DIRS or _show_docs(trees) or _only_imports(trees)): return
            super().__call__(cell)

    class DocsFilter(FilterDefaults):
        def base_procs(self):
            return [exec_show_docs_saved if p is exec_show_docs else p for p in super().base_procs()]
    return DocsFilter


def _proc_one(job):
    src, dst = job
    os.chdir(ROOT)                       # nbdev reads pyproject.toml from the working directory
    import warnings; warnings.simplefilter('ignore')
    import nbdev.serve_drv
    t0 = time.time()
    nbdev.serve_drv.main((Path(src), Path(dst), _docs_procs()))
    return Path(src).name, time.time() - t0


def notebooks():
    "The notebooks nbdev renders, in nbdev's sidebar order (file names sorted; `_*` and `.*` skipped)"
    nbs = ROOT/'nbs'
    return sorted(p for p in nbs.glob('*.ipynb') if not p.name.startswith(('_', '.')))


def process(force=False, n_workers=2):
    chk = max(p.stat().st_mtime for p in (ROOT/'pyproject.toml', Path(__file__)))
    if PROC.exists() and (force or PROC.stat().st_mtime < chk): shutil.rmtree(PROC)
    PROC.mkdir(exist_ok=True)
    srcs = notebooks()
    for d in PROC.glob('*.ipynb'):       # a notebook that was removed or renamed
        if not (ROOT/'nbs'/d.name).exists(): d.unlink()
    jobs = [(str(s), str(PROC/s.name)) for s in srcs
            if not (PROC/s.name).exists() or (PROC/s.name).stat().st_mtime < s.stat().st_mtime]
    if jobs:
        print(f'docs: processing {len(jobs)} notebook(s) with nbdev', flush=True)
        n = max(1, min(n_workers, len(jobs)))
        if n == 1: res = [_proc_one(j) for j in jobs]
        else:
            # the workers pickle `_proc_one` by module name: not `__main__`, which IPython (run by nbdev) replaces
            if __name__ == '__main__':
                sys.path.insert(0, str(Path(__file__).parent))
                from build import _proc_one as fn
            else: fn = _proc_one
            with ProcessPoolExecutor(n, mp_context=mp.get_context('spawn')) as ex: res = list(ex.map(fn, jobs))
        for name, dt in res: print(f'  {name}: {dt:.1f} s', flush=True)
    PROC.touch()
    return srcs


# ---- 2. staging for MyST-NB -----------------------------------------------------------------------------------
def _cfg():
    import tomllib
    d = tomllib.loads((ROOT/'pyproject.toml').read_text())
    urls = d['project'].get('urls', {})
    return dict(site=urls.get('Documentation', '').rstrip('/') + '/', repo=urls.get('Repository', '').rstrip('/'))


def page_name(nb_path, fm=None):
    "nbdev's page name: the frontmatter's `output-file`, else the notebook's name without its numeric prefix"
    if fm and fm.get('output-file'): return Path(fm['output-file']).stem
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', Path(nb_path).stem.lower())


def _frontmatter(nb):
    import yaml
    for i, c in enumerate(nb['cells']):
        src = ''.join(c['source']).strip()
        if c['cell_type'] == 'raw' and src.startswith('---') and src.count('---') >= 2:
            return i, yaml.safe_load(src.strip('-\n ')) or {}
        if src: break
    return None, {}


_re_dir = re.compile(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')
_re_link = re.compile(r'(?<!!)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*<?([^()\s>]+)>?\s*\)')
_TAGS = {('echo', 'false'): 'remove-input', ('output', 'false'): 'remove-output', ('include', 'false'): 'remove-cell'}


def _quarto_id(s):
    "The id pandoc (Quarto) gives a heading, as nbdev's doc links expect it"
    s = re.sub(r'[^\w\s.-]', '', s.lower()).strip()
    return re.sub(r'\s+', '-', s)


class Stager:
    def __init__(self, srcs):
        self.cfg = _cfg()
        self.pages = {}                  # notebook file name -> page name
        for s in srcs:
            _, fm = _frontmatter(json.loads((PROC/s.name).read_text()))
            self.pages[s.name] = page_name(s, fm)

    def _link(self, m, nb_dir):
        text, url = m.group(1), m.group(2)
        site = self.cfg['site']
        if site != '/' and url.startswith(site):   # a doc link to the online site -> the local page
            rest = url[len(site):]
            page, _, anchor = rest.partition('#')
            page = re.sub(r'\.html(\.md)?$', '', page) or 'index'
            href = f'{page}.html' + (f'#{anchor}' if anchor else '')
            code = re.fullmatch(r'`([^`]+)`', text)
            inner = f'<code class="docutils literal notranslate"><span class="pre">{html.escape(code.group(1))}</span></code>' \
                if code else html.escape(text)
            return f'<a class="reference internal" href="{href}">{inner}</a>'
        if re.match(r'^[a-z][a-z0-9+.-]*:', url) or url.startswith(('#', '/')): return m.group(0)
        path, _, anchor = url.partition('#')
        for base in (nb_dir, ROOT):      # index.ipynb is also the README: its links are relative to the root
            p = (base/path).resolve()
            if not p.exists(): continue
            if p.suffix == '.ipynb' and p.name in self.pages and p.parent == ROOT/'nbs':
                return f'[{text}]({self.pages[p.name]}.ipynb' + (f'#{anchor})' if anchor else ')')
            try: rel = p.relative_to(ROOT).as_posix()
            except ValueError: return m.group(0)
            if self.cfg['repo']:          # a file of the repository that is not a page: link it on GitHub
                kind = 'tree' if p.is_dir() else 'blob'
                return f'[{text}]({self.cfg["repo"]}/{kind}/main/{rel}' + (f'#{anchor})' if anchor else ')')
        return m.group(0)

    def _md(self, s, nb_dir):
        s = _re_link.sub(lambda m: self._link(m, nb_dir), s)
        # show_doc's Quarto attributes on its [source] link -> a class the theme's CSS floats right
        return s.replace('{target="_blank" style="float:right; font-size:smaller"}', '{.showdoc-source}')

    def _showdoc_md(self, s, nb_dir):
        "A show_doc output: keep Quarto's heading id as an extra anchor, so that the site's doc links land on it"
        def anchor(m):
            qid, did = _quarto_id(m.group(2)), re.sub(r'[^a-z0-9]+', '-', m.group(2).lower()).strip('-')
            return (f'<span id="{qid}"></span>\n\n' if qid != did else '') + m.group(0)
        s = re.sub(r'^(#{2,4}) +(\S+)\s*$', anchor, s, flags=re.MULTILINE)
        s = re.sub(r'^\s*---\s*\n', '', s)    # the rule above each name: CSS draws it (`.tag_showdoc`)
        return self._md(s, nb_dir)

    def stage_nb(self, src):
        nb = json.loads((PROC/src.name).read_text())
        nb_dir = src.parent
        i, fm = _frontmatter(nb)
        cells = []
        for j, c in enumerate(nb['cells']):
            c = dict(c)
            src_ = ''.join(c.get('source', ''))
            if j == i:                   # nbdev's frontmatter -> title heading + description
                md = f'# {fm.get("title", page_name(src))}\n'
                if fm.get('description'): md += '\n{.nb-description}\n' + ' '.join(str(fm['description']).split()) + '\n'
                cells.append(dict(cell_type='markdown', metadata={}, source=md))
                continue
            if c['cell_type'] == 'markdown':
                if src_.strip() == '<!-- WARNING: THIS FILE WAS AUTOGENERATED! DO NOT EDIT! -->': continue
                c['source'] = self._md(src_, nb_dir)
            elif c['cell_type'] == 'code':
                lines, tags = src_.splitlines(), set(c.get('metadata', {}).get('tags', []))
                while lines and (m := _re_dir.match(lines[0])):
                    k, v = m.group(1), m.group(2).lower()
                    if (k, v) in _TAGS: tags.add(_TAGS[k, v])
                    lines.pop(0)
                body = '\n'.join(lines).strip('\n')
                outs = c.get('outputs', [])
                if not body and not outs: continue
                if not body: tags.add('remove-input')
                showdoc = bool(re.match(r'\s*show_doc\(', body))
                if showdoc: tags.add('showdoc')
                for o in outs:
                    md = o.get('data', {}).get('text/markdown')
                    if md is not None:
                        md = ''.join(md)
                        o['data']['text/markdown'] = self._showdoc_md(md, nb_dir) if showdoc else self._md(md, nb_dir)
                c['source'] = body
                c['metadata'] = {**c.get('metadata', {}), 'tags': sorted(tags)}
            elif c['cell_type'] == 'raw':
                continue                 # Quarto-only raw content
            cells.append(c)
        keys = dict(markdown=('id', 'cell_type', 'metadata', 'source', 'attachments'),
                    code=('id', 'cell_type', 'metadata', 'source', 'outputs', 'execution_count'))
        name = self.pages[src.name]
        if name == 'index':
            others = [p for n, p in self.pages.items() if p != 'index']
            toc = '```{toctree}\n:hidden:\n:maxdepth: 1\n:caption: Notebooks\n\n' + '\n'.join(others) + '\n```\n'
            cells.append(dict(cell_type='markdown', metadata={}, source=toc))
        for k, c in enumerate(cells):     # nbformat-valid cells (nbdev adds private keys such as `has_sd`)
            c = {key: c[key] for key in keys[c['cell_type']] if key in c}
            c.setdefault('id', f'{name}-{k}')
            c['metadata'] = {m: v for m, v in c.get('metadata', {}).items() if m != 'execution'}   # execnb's timings
            if c['cell_type'] == 'code': c.setdefault('outputs', []); c.setdefault('execution_count', None)
            cells[k] = c
        nb['cells'] = cells
        nb['metadata'] = {**nb.get('metadata', {}),     # nbdev-clean strips these; MyST-NB picks the lexer here
                          'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'},
                          'language_info': {'name': 'python', 'pygments_lexer': 'ipython3'}}
        nb['metadata'].pop('widgets', None)
        nb['nbformat'], nb['nbformat_minor'] = 4, max(5, nb.get('nbformat_minor', 5))
        return name, json.dumps(nb, indent=1, ensure_ascii=False) + '\n'

    def stage(self, srcs):
        SRC.mkdir(parents=True, exist_ok=True)
        keep = set()
        for s in srcs:
            name, text = self.stage_nb(s)
            dst = SRC/f'{name}.ipynb'
            keep.add(dst.name)
            if not dst.exists() or dst.read_text() != text: dst.write_text(text)   # unchanged: Sphinx skips it
        for d in SRC.glob('*.ipynb'):
            if d.name not in keep: d.unlink()
        for d in (ROOT/'nbs').iterdir():     # figures beside the notebooks (nbs/images/), for their relative links
            if d.is_dir() and not d.name.startswith(('.', '_')): shutil.copytree(d, SRC/d.name, dirs_exist_ok=True)


def stage_mathjax():
    "MathJax 3.2.2 (es5 build, CommonHTML output and its woff fonts, TeX extensions) into the static folder"
    import importlib.util
    spec = importlib.util.find_spec('mathjax')
    es5 = Path(spec.origin).parent/'static'/'mathjax'/'es5' if spec and spec.origin else None
    if not es5 or not (es5/'tex-chtml.js').exists():
        sys.exit('docs: MathJax not found: install the docs extra (pip install -e ".[docs]"), `make docs` does it')
    dst = STATIC/'mathjax'
    if (dst/'tex-chtml.js').exists() and (dst/'tex-chtml.js').stat().st_size == (es5/'tex-chtml.js').stat().st_size:
        return
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    shutil.copy2(es5/'tex-chtml.js', dst/'tex-chtml.js')
    for sub in ('output/chtml/fonts/woff-v2', 'input/tex/extensions', 'ui', 'a11y', 'sre'):
        if (es5/sub).exists(): shutil.copytree(es5/sub, dst/sub)
    shutil.copy2(es5.parent/'LICENSE', dst/'LICENSE')


# ---- 3. Sphinx ------------------------------------------------------------------------------------------------
def render(jobs='2', force=False):
    # a Quarto site from `nbdev-docs`, or a Sphinx site whose environment is gone (fresh _proc/): start afresh
    if OUT.exists() and not ((OUT/'.buildinfo').exists() and DOCTREES.exists()): shutil.rmtree(OUT)
    cmd = [sys.executable, '-m', 'sphinx', '-b', 'html', '-q', '--keep-going', '-j', str(jobs),
           '-c', str(ROOT/'docs'), '-d', str(DOCTREES), str(SRC), str(OUT)]
    if force: cmd.insert(3, '-E')
    print('docs: sphinx-build ->', OUT.relative_to(ROOT), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--force', action='store_true', help='reprocess every notebook and rebuild every page')
    ap.add_argument('-j', '--jobs', default='2', help='parallel notebook processing and Sphinx reading (default 2)')
    a = ap.parse_args(argv)
    t0 = time.time()
    os.chdir(ROOT)
    srcs = process(force=a.force, n_workers=int(a.jobs) if a.jobs.isdigit() else 2)
    Stager(srcs).stage(srcs)
    stage_mathjax()
    render(a.jobs, force=a.force)
    print(f'docs: {OUT.relative_to(ROOT)}/index.html ({time.time() - t0:.0f} s)', flush=True)


if __name__ == '__main__': main()
