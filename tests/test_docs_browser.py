"""/docs works in a real browser with no internet: headless Chromium opens Swagger UI on the
API served as deployed, sees every operation rendered, logs in through Authorize with a demo
account and calls GET /users/me from the page. Any host but the API's own fails to resolve, and
every resource the page loaded is checked to come from the API. A screenshot of the answered
call goes to reports/docs-users-me.png."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.wait import WebDriverWait

from app.core.config import Settings
from app.seed import demo_accounts, seed
from tests.conftest import Servers
from tests.faults.conftest import ROOT, emptied_runtime, serving_api, settings_on_own_database
from tests.tools import require_tool

ME = "/api/v1/users/me"
WAIT_S = 30
SCREENSHOT = ROOT / "reports" / "docs-users-me.png"


@pytest.fixture(scope="module")
async def settings(servers: Servers) -> Settings:
    """A database of its own, with the demo data `make run` seeds."""
    settings = await settings_on_own_database(servers, "keystone_docs_browser", redis_db=13)
    async with emptied_runtime(settings) as runtime:
        await seed(runtime)
    return settings


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    chromium = require_tool("chromium", "chromium")
    driver_path = require_tool("chromedriver", "chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,2000",
        # No internet: every name but the API's address fails to resolve.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(flag)
    # The driver named explicitly: Selenium never looks for (or downloads) one of its own.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def _visible(driver: WebDriver, css: str) -> WebElement:
    found: WebElement = WebDriverWait(driver, WAIT_S).until(
        ready.visibility_of_element_located((By.CSS_SELECTOR, css))
    )
    return found


def _authorize(driver: WebDriver, email: str, password: str) -> None:
    _visible(driver, "button.btn.authorize").click()
    _visible(driver, "#oauth_username").send_keys(email)
    _visible(driver, "#oauth_password").send_keys(password)
    _visible(driver, ".auth-btn-wrapper button.authorize").click()
    _visible(driver, ".auth-btn-wrapper button.btn-done").click()


def _call_me(driver: WebDriver) -> WebElement:
    me = _visible(driver, f'.opblock-get:has(.opblock-summary-path[data-path="{ME}"])')
    me.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    _visible(driver, ".opblock-get.is-open .try-out__btn").click()
    _visible(driver, ".opblock-get.is-open button.execute").click()
    return _visible(driver, ".opblock-get.is-open .live-responses-table .response")


def test_swagger_ui_logs_in_and_calls_the_api_without_internet(
    settings: Settings, browser: WebDriver, tmp_path: Path
) -> None:
    customer = next(a for a in demo_accounts() if a.email.startswith("customer@"))
    with serving_api(settings, tmp_path / "api.log") as (base, _):
        document = httpx.get(f"{base}/openapi.json", timeout=10).json()
        browser.get(f"{base}/docs")
        _visible(browser, ".opblock")
        rendered = browser.find_elements(By.CSS_SELECTOR, ".opblock")
        operations = sum(len(item) for item in document["paths"].values())
        assert len(rendered) == operations

        _authorize(browser, customer.email, customer.password)
        answer = _call_me(browser)

        status = answer.find_element(By.CSS_SELECTOR, ".response-col_status").text
        body = answer.find_element(By.CSS_SELECTOR, ".response-col_description pre").text
        SCREENSHOT.parent.mkdir(exist_ok=True)
        browser.save_screenshot(str(SCREENSHOT))
        loaded = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
    assert status.startswith("200")
    assert json.loads(body)["email"] == customer.email
    assert loaded, "the page loaded its assets"
    assert [url for url in loaded if not url.startswith(base)] == []
