# The notebooks here are fixtures driven by tests/test_browser.py in a real browser; they have
# no stored outputs, so nbval must not collect them.
collect_ignore_glob = ["*.ipynb"]
