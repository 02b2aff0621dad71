"""Sphinx configuration of the offline documentation site (`make docs`, see docs/build.py).

The sources are the nbdev-processed notebooks that docs/build.py stages in `_proc/.sphinx/src`; MyST-NB renders
their saved outputs (no execution), MathJax 3 is served from `_static/mathjax` (no CDN), Furo gives the navigation
and Sphinx the search.
"""
import re, tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_pp = tomllib.loads((ROOT/'pyproject.toml').read_text())
_nbdev = _pp.get('tool', {}).get('nbdev', {})
_init = (ROOT/_nbdev.get('lib_path', 'robustsparsesnn')/'__init__.py').read_text()

project = _nbdev.get('title', _pp['project']['name'])
author = ', '.join(a.get('name', '') for a in _pp['project'].get('authors', []))
release = version = (re.search(r'__version__\s*=\s*[\'"]([^\'"]+)', _init) or [None, ''])[1]
copyright = author

extensions = ['myst_nb', 'sphinx.ext.mathjax']
root_doc = 'index'
exclude_patterns = ['**.ipynb_checkpoints']

# MyST-NB: render the outputs saved in the notebooks (nbdev already ran what show_doc needs)
nb_execution_mode = 'off'
nb_merge_streams = True
nb_render_markdown_format = 'myst'          # show_doc's text/markdown outputs
nb_ipywidgets_js = {}                       # never load the widget manager from a CDN
myst_enable_extensions = ['dollarmath', 'amsmath', 'attrs_inline', 'attrs_block', 'colon_fence', 'html_image']
myst_dmath_double_inline = True
suppress_warnings = ['myst.header', 'mystnb.unknown_mime_type', 'misc.highlighting_failure']

# math: the MathJax 3 copy that docs/build.py stages (relative paths are relative to _static/)
mathjax_path = 'mathjax/tex-chtml.js'

# HTML
html_theme = 'furo'
html_title = project
html_static_path = [str(ROOT/'docs'/'_static'), str(ROOT/'_proc'/'.sphinx'/'static')]
html_css_files = ['custom.css']
html_favicon = str(ROOT/'docs'/'_static'/'favicon.svg')
html_copy_source = False
html_show_sourcelink = False
html_theme_options = {'top_of_page_buttons': []}   # the staged sources are not the notebooks in nbs/


def _output_folder(app):
    "MyST-NB writes output images beside the output folder (<root>/jupyter_execute): keep them in _proc/.sphinx"
    from myst_nb.core.config import NbParserConfig
    cfg = getattr(app.env, 'mystnb_config', None)
    if isinstance(cfg, NbParserConfig):
        app.env.mystnb_config = cfg.copy(output_folder=str(ROOT/'_proc'/'.sphinx'/'jupyter_execute'),
                                         execution_cache_path=str(ROOT/'_proc'/'.sphinx'/'jupyter_cache'))


def setup(app):
    app.connect('builder-inited', _output_folder, priority=900)   # after MyST-NB's own handler
