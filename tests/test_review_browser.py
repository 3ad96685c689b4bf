"""The browser review in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`) driven by
Selenium, against `pipeline audit review NAME --web` started on a free port of 127.0.0.1. One image relabelled and
another excluded by keyboard, the page reloaded and both decisions seen, the reviews files checked, and the split
drawn again with them."""

import shutil

import pandas as pd
import pytest

from pipeline.core.paths import SPLITS
from pipeline.data.manifests import read_manifest
from pipeline.serving.launch import pipeline_server
from pipeline.stages.split import split
from tests.helpers.review import DATASET, audited, review_params, small_tree

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="chromium or chromedriver not installed: apt-get install chromium chromium-driver"
)
WAIT = 20  # seconds for the page to show what is asked


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))  # no Selenium Manager, no download
    yield driver
    driver.quit()


def _badge(browser, path: str) -> str:
    """The decision the list shows for the image, once it shows one: read in one script call, since the page redraws
    the list after each decision (an element found in one call may be gone by the next)."""
    from selenium.webdriver.support.ui import WebDriverWait

    selector = f'#list .decision[data-path="{path}"]'
    script = "const shown = document.querySelector(arguments[0]); return shown && shown.textContent.trim();"
    return WebDriverWait(browser, WAIT).until(lambda driver: driver.execute_script(script, selector))


def _press(browser, keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    for key in keys:
        ActionChains(browser).send_keys(key).perform()


def _until(browser, path: str, text: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, WAIT).until(lambda _: _badge(browser, path) == text)


def test_a_relabel_and_an_exclusion_by_keyboard_survive_a_reload_and_re_split(paths, browser, monkeypatch):
    tree = small_tree()
    params = audited(paths, tree)
    monkeypatch.chdir(paths.root)
    split(DATASET, params.split[DATASET], params.seed, paths)
    moved = min(tree.moved)  # the first finding: the top label issue
    true_class = tree.moved[moved]
    digit = str(["blue", "green", "red"].index(true_class) + 1)  # the classes, sorted
    blank = tree.blanks[0]  # the first outlier: the third finding
    with pipeline_server("audit", "review", DATASET, "--web", cwd=paths.root) as served:
        browser.get(served.url)
        _until(browser, moved, "undecided")
        _press(browser, digit)  # relabel to class N, then on to the next finding
        _until(browser, moved, f"relabelled to {true_class}")
        _press(browser, "je")  # past the second label issue; exclude the outlier
        _until(browser, blank, "excluded")
        browser.refresh()
        _until(browser, moved, f"relabelled to {true_class}")  # a timeout if the reloaded page shows otherwise
        _until(browser, blank, "excluded")
    reviews = paths.root / "reviews" / DATASET
    assert pd.read_csv(reviews / "relabel.csv").to_dict("list") == {"path": [moved], "label": [true_class]}
    assert list(pd.read_csv(reviews / "exclude.csv")["path"]) == [blank]
    params = review_params(paths.root, exclude=f"reviews/{DATASET}/exclude.csv", relabel=f"reviews/{DATASET}/relabel.csv")
    summary = split(DATASET, params.split[DATASET], params.seed, paths)
    manifests = pd.concat([read_manifest(paths, DATASET, name) for name in SPLITS]).set_index("path")
    assert blank not in manifests.index
    assert manifests.loc[moved, "class"] == true_class
    assert summary["reviewed"] == {"excluded": 1, "relabelled": 1}
