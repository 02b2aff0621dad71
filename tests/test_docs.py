"""The offline documentation site (`make docs`, docs/build.py): every notebook a page, the API reference complete,
no asset from the network, and, in headless Chromium, pages that load cleanly with typeset equations and figures.

The site is built (incrementally: quick when nothing changed) by `make docs`, which installs the `docs` extra into
.venv when needed. The browser test needs Debian's `chromium` and `chromium-driver` and is skipped without them.
Screenshots land in `_docs/screenshots/`.
"""
import ast, functools, http.server, json, re, shutil, subprocess, threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT/'_docs'
LIB = ROOT/'robustsparsesnn'
SHOTS = DOCS/'screenshots'


CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')
needs_chromium = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
    reason='needs headless Chromium: apt-get install chromium chromium-driver')


# ---- the project's notebooks, modules and exported names, read from the sources -----------------------------------
def notebooks():
    "The notebooks nbdev renders, in its navigation order"
    return sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith(('_', '.')))


def page_of(nb):
    "nbdev's page name for a notebook (numeric prefix stripped): 01c_neurons.ipynb -> neurons"
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', Path(nb).stem.lower())


def first_heading(nb):
    for c in json.loads(Path(nb).read_text())['cells']:
        if c['cell_type'] == 'markdown' and (m := re.match(r'\s*#\s+(.+)', ''.join(c['source']))):
            return m.group(1).strip()


def modules():
    "module name -> (source path, its notebook), for every module that _modidx.py lists"
    ns = {}
    exec((LIB/'_modidx.py').read_text(), ns)
    res = {}
    for mod in ns['d']['syms']:
        path = ROOT/(mod.replace('.', '/') + '.py')
        m = re.search(r'File to edit: \.\./nbs/(\S+\.ipynb)', path.read_text())
        res[mod] = (path, m and m.group(1))
    return res


def _params(node):
    "Parameter names that show_doc lists for a function or a class"
    if isinstance(node, ast.ClassDef):
        init = next((b for b in node.body if isinstance(b, ast.FunctionDef) and b.name == '__init__'), None)
        if init is None:
            decos = [ast.unparse(d) for d in node.decorator_list]
            if any('dataclass' in d for d in decos):
                return [b.target.id for b in node.body if isinstance(b, ast.AnnAssign) and isinstance(b.target, ast.Name)]
            return []                    # an inherited __init__
        node = init
    a = node.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    names += [x.arg for x in (a.vararg, a.kwarg) if x]
    return [n for n in names if n not in ('self', 'cls')]


def exported_defs():
    "(module, page, name, first docstring paragraph, parameters) of each function and class in a module's __all__"
    res = []
    for mod, (path, nb) in modules().items():
        tree = ast.parse(path.read_text())
        all_ = next((ast.literal_eval(s.value) for s in tree.body if isinstance(s, ast.Assign)
                     and any(getattr(t, 'id', '') == '__all__' for t in s.targets)), [])
        defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        for name in all_:
            if name in defs:
                doc = (ast.get_docstring(defs[name]) or '').strip().split('\n\n')[0]
                res.append((mod, page_of(nb) if nb else None, name, doc, _params(defs[name])))
    return res


def _words(s): return re.findall(r'\w+', s.lower())


def _contains_words(text, doc):
    "Does `text` contain the words of `doc` in order (punctuation, markup and typographic quotes aside)?"
    t, d = ' '.join(_words(text)), ' '.join(_words(doc))
    return d in t


# ---- the site ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def site():
    "Build the site with `make docs`: incremental, so quick when it is fresh"
    r = subprocess.run(['make', '--no-print-directory', 'docs'], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, f'make docs failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}'
    assert (DOCS/'index.html').exists()
    return DOCS


def soup(path):
    from bs4 import BeautifulSoup
    return BeautifulSoup(Path(path).read_text(encoding='utf-8'), 'html.parser')


def test_every_notebook_is_a_page_in_order(site):
    pages = [page_of(nb) for nb in notebooks()]
    assert 'index' in pages and len(pages) > 1
    for nb in notebooks():
        html = site/f'{page_of(nb)}.html'
        assert html.exists(), f'no page for {nb.name}'
        h1 = soup(html).find('h1')
        assert h1 is not None and h1.get_text(' ', strip=True).rstrip('#¶ ').strip() == first_heading(nb), \
            f'{html.name}: title {h1 and h1.get_text()!r} is not the first heading of {nb.name}'
    # the navigation lists the pages in notebook order
    nav = [a['href'].split('#')[0] for a in soup(site/'index.html').select('.sidebar-tree a.reference.internal')]
    want = [f'{p}.html' for p in pages if p != 'index']
    assert [h for h in nav if h in want] == want, f'navigation order {nav} != {want}'


def test_no_asset_from_the_network(site):
    "No script, stylesheet, font or image is loaded from another host: the site works offline"
    bad = []
    for f in list(site.rglob('*.html')) + list(site.rglob('*.css')):
        s = f.read_text(encoding='utf-8', errors='replace')
        bad += [(f.name, m) for m in re.findall(r'<script[^>]*\ssrc="(https?:[^"]+)"', s)]
        bad += [(f.name, m) for m in re.findall(r'<link[^>]*\shref="(https?:[^"]+)"', s)]
        bad += [(f.name, m) for m in re.findall(r'<img[^>]*\ssrc="(https?:[^"]+)"', s)]
        bad += [(f.name, m) for m in re.findall(r'url\(\s*[\'"]?(https?:[^\'")]+)', s)]
        bad += [(f.name, m) for m in re.findall(r'@import\s+(?:url\()?[\'"]?(https?:[^\'")]+)', s)]
    assert not bad, bad
    assert (site/'_static'/'mathjax'/'tex-chtml.js').exists()
    assert list((site/'_static'/'mathjax'/'output'/'chtml'/'fonts'/'woff-v2').glob('*.woff'))


def test_api_reference_complete(site):
    "Every exported function and class has a show_doc entry with its docstring and its parameters"
    problems, n = [], 0
    pages = {}
    for mod, page, name, doc, params in exported_defs():
        n += 1
        if page is None: problems.append(f'{mod}.{name}: no notebook'); continue
        if page not in pages: pages[page] = soup(site/f'{page}.html')
        heads = [h for h in pages[page].select('p.rubric, h2, h3, h4')
                 if h.get_text(strip=True).rstrip('#¶').strip() == name]
        if not heads: problems.append(f'{page}.html: no entry for {mod}.{name}'); continue
        block = heads[0].find_parent('div', class_='cell_output') or heads[0].parent
        text = block.get_text(' ', strip=True)
        if not doc: problems.append(f'{mod}.{name}: has no docstring')
        elif not _contains_words(text, doc): problems.append(f'{page}.html: {name}: docstring {doc[:60]!r} not shown')
        missing = [p for p in params if not re.search(rf'\b{re.escape(p)}\b', text)]
        if missing: problems.append(f'{page}.html: {name}: parameters {missing} not shown')
    assert n > 50, f'only {n} exported functions and classes found'
    assert not problems, f'{len(problems)} of {n} exported names:\n' + '\n'.join(problems)


# ---- in the browser ------------------------------------------------------------------------------------------------
class _Handler(http.server.SimpleHTTPRequestHandler):
    failed = []
    def log_message(self, *a): pass
    def log_request(self, code='-', size='-'):
        if str(code).isdigit() and int(code) >= 400: self.failed.append((self.path, int(code)))


@pytest.fixture(scope='module')
def server(site):
    _Handler.failed = []
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Handler, directory=str(site)))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f'http://127.0.0.1:{srv.server_address[1]}'
    srv.shutdown(); srv.server_close()


@pytest.fixture(scope='module')
def browser(server):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--hide-scrollbars',
              '--window-size=1280,1000', '--no-first-run', '--no-default-browser-check', '--disable-extensions',
              # no network: every host but this machine fails to resolve, and such a request would count as failed
              '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1'):
        opts.add_argument(a)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL', 'performance': 'ALL'})
    d = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    d.set_page_load_timeout(60); d.set_script_timeout(60)
    d.get('about:blank')
    d.get_log('browser'); d.get_log('performance')      # what the browser did before the first page
    yield d
    d.quit()


_WAIT_MATH = """const done = arguments[arguments.length - 1];
if (window.MathJax && MathJax.startup && MathJax.startup.promise)
  MathJax.startup.promise.then(() => done('ok'), e => done('error: ' + e));
else done('none');"""

_STATE = """return {
  math: document.querySelectorAll('.math').length,
  rendered: document.querySelectorAll('mjx-container').length,
  untypeset: [...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')).length,
  merror: document.querySelectorAll('mjx-merror').length,
  imgs: [...document.images].map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]),
  text: document.body.innerText,
  title: document.title};"""


def _failed_requests(perf_log):
    "Failed loads and error responses in Chromium's performance log"
    bad, urls = [], {}
    for e in perf_log:
        m = json.loads(e['message'])['message']
        p = m.get('params', {})
        if m['method'] == 'Network.requestWillBeSent': urls[p['requestId']] = p['request']['url']
        elif m['method'] == 'Network.loadingFailed' and not p.get('canceled'):
            bad.append((urls.get(p['requestId'], '?'), p.get('errorText')))
        elif m['method'] == 'Network.responseReceived' and p['response']['status'] >= 400:
            bad.append((p['response']['url'], p['response']['status']))
    return [b for b in bad if not b[0].startswith(('chrome:', 'data:'))]   # not the browser's own pages


def visit(d, url):
    d.get(url)
    assert d.execute_async_script(_WAIT_MATH) in ('ok', 'none')
    st = d.execute_script(_STATE)
    return st, [e for e in d.get_log('browser') if e['level'] == 'SEVERE'], _failed_requests(d.get_log('performance'))


def _screenshot(d, path, full=False, y=0, height=None):
    "PNG of the page: the window from `y` (`height` tall) or, with `full`, the whole page"
    import base64
    w = d.execute_script('return document.documentElement.clientWidth')
    h = d.execute_script('return document.documentElement.scrollHeight') if full else (height or 1000)
    shot = d.execute_cdp_cmd('Page.captureScreenshot', {'format': 'png', 'captureBeyondViewport': True,
                             'clip': {'x': 0, 'y': y, 'width': w, 'height': h, 'scale': 1}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot['data']))


@pytest.mark.browser
@needs_chromium
def test_pages_in_chromium(site, server, browser):
    d, problems = browser, []
    pages = [page_of(nb) for nb in notebooks()]
    for page in pages + ['genindex']:
        st, console, failed = visit(d, f'{server}/{page}.html')
        if console: problems.append(f'{page}: console errors {[e["message"] for e in console]}')
        if failed: problems.append(f'{page}: failed requests {failed}')
        if st['untypeset'] or st['merror']:
            problems.append(f'{page}: {st["untypeset"]} of {st["math"]} equations not typeset, {st["merror"]} TeX errors')
        if st['math'] and re.search(r'\$\$|\\frac|\\begin\{', st['text']): problems.append(f'{page}: raw TeX in the text')
        broken = [i for i in st['imgs'] if not (i[1] and i[2] > 0)]
        if broken: problems.append(f'{page}: broken images {broken}')
    if _Handler.failed: problems.append(f'server answered errors: {_Handler.failed}')
    assert not problems, '\n'.join(problems)


@pytest.mark.browser
@needs_chromium
def test_neurons_page_equations_figure_api(site, server, browser):
    d = browser
    st, console, failed = visit(d, f'{server}/neurons.html')
    assert not console and not failed, (console, failed)
    # equations typeset by MathJax, no TeX source left in the text
    assert st['math'] >= 5 and st['rendered'] == st['math'] and st['untypeset'] == 0 and st['merror'] == 0, st['math']
    assert '$$' not in st['text'] and '\\frac' not in st['text'] and '\\mathbf' not in st['text']
    # a figure from the notebook's saved outputs
    assert any(src and ok and w > 0 for src, ok, w in st['imgs']), st['imgs']
    # the API reference: IFNeuron with its docstring and its parameters
    node = next(n for n in ast.parse((LIB/'neurons.py').read_text()).body
                if isinstance(n, ast.ClassDef) and n.name == 'IFNeuron')
    entry = d.execute_script("""const h = document.getElementById('ifneuron');
        return h ? h.closest('.cell_output').innerText : null""")
    assert entry and 'IFNeuron' in entry
    assert _contains_words(entry, ast.get_docstring(node).split('\n\n')[0])
    assert all(p in entry for p in _params(node)) and 'threshold' in entry
    # screenshots: the whole page, its top (typeset equations) and the first figure with the text around it
    _screenshot(d, SHOTS/'neurons.png', full=True)
    _screenshot(d, SHOTS/'neurons-top.png', height=1000)
    y = d.execute_script("""const i = [...document.images].find(i => i.naturalWidth > 0);
        const y = i.getBoundingClientRect().top + window.scrollY - 450;
        return Math.max(0, Math.min(y, document.documentElement.scrollHeight - 1000))""")
    _screenshot(d, SHOTS/'neurons-figure.png', y=y, height=1000)
    assert (SHOTS/'neurons.png').stat().st_size > 10_000


@pytest.mark.browser
@needs_chromium
def test_index_and_search(site, server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    d = browser
    st, console, failed = visit(d, f'{server}/index.html')
    assert not console and not failed, (console, failed)
    assert first_heading(ROOT/'nbs'/'index.ipynb') in st['text']
    links = [a.get_attribute('href') for a in d.find_elements(By.CSS_SELECTOR, '.sidebar-tree a.reference.internal')]
    assert any(h.endswith('/neurons.html') for h in links), links
    _screenshot(d, SHOTS/'index.png', height=1000)
    _screenshot(d, SHOTS/'index-full.png', full=True)
    # the built-in search finds the API entry
    d.get(f'{server}/search.html?q=IFNeuron')
    # the results are appended one by one; the summary line says when the last one is in
    WebDriverWait(d, 30).until(lambda d: any(p.text.startswith('Search finished')
                                             for p in d.find_elements(By.CSS_SELECTOR, '#search-results p.search-summary')))
    hits = [a.get_attribute('href') for a in d.find_elements(By.CSS_SELECTOR, '#search-results li a')]
    assert any('neurons.html' in h for h in hits), hits
    assert not [e for e in d.get_log('browser') if e['level'] == 'SEVERE']
