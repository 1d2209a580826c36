//! A headless Chromium session over WebDriver (fantoccini), with the few moves the dashboard
//! test makes: go to a page, wait for an element or a text, click, type, screenshot. Every
//! wait polls with a deadline ([`durable_tests::wait_until`]); nothing sleeps a fixed time.

use std::path::Path;
use std::time::Duration;

use durable_tests::chromedriver::{Chromedriver, Chromium};
use durable_tests::wait_until;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use tempfile::TempDir;

/// How long a page gets to show what a step waits for.
pub(crate) const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// One browser: chromedriver, its Chromium, and a WebDriver session with a fresh profile.
/// [`quit`](Self::quit) ends the session; dropping it (a failed test) kills chromedriver's
/// process group, Chromium included.
pub(crate) struct Browser {
    client: Client,
    // Dropped after the session: the profile directory goes with the browser.
    driver: Chromedriver,
    _profile: TempDir,
}

impl Browser {
    /// Starts chromedriver (log in `dir`) and opens a headless session.
    pub(crate) async fn launch(chromium: &Chromium, dir: &Path) -> Browser {
        let driver = Chromedriver::start(chromium, &dir.join("chromedriver.log")).await;
        let profile = tempfile::Builder::new()
            .prefix("chromium-profile-")
            .tempdir_in(dir)
            .expect("create a Chromium profile directory");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), "chrome".into());
        capabilities.insert(
            "goog:chromeOptions".into(),
            chromium.options(profile.path()),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(driver.url())
            .await
            .unwrap_or_else(|e| {
                panic!("cannot open a Chromium session: {e}\n{}", driver.log_tail())
            });
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Navigates to `url` and waits for the page to load.
    pub(crate) async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// Reloads the current page.
    pub(crate) async fn refresh(&self) {
        self.client.refresh().await.expect("reload the page");
    }

    /// The path of the page shown (`/admin/login`).
    pub(crate) async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("read the current URL")
            .path()
            .to_owned()
    }

    /// Waits until the page shown is at `path` (after a redirect or a form post).
    pub(crate) async fn wait_path(&self, path: &str) {
        wait_until(
            &format!("the browser is at {path}"),
            PAGE_TIMEOUT,
            async || {
                let now = self.path().await;
                if now == path {
                    Ok(())
                } else {
                    Err(now)
                }
            },
        )
        .await;
    }

    /// Waits until an element matches `css` and returns it.
    pub(crate) async fn wait_for(&self, css: &str) -> Element {
        wait_until(
            &format!("`{css}` is on the page"),
            PAGE_TIMEOUT,
            async || match self.client.find(Locator::Css(css)).await {
                Ok(element) => Ok(element),
                Err(e) => Err(format!("{e} (at {})", self.path().await)),
            },
        )
        .await
    }

    /// All elements matching `css` now (possibly none).
    pub(crate) async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("cannot look for `{css}`: {e}"))
    }

    /// The trimmed text of the element matching `css` (waited for).
    pub(crate) async fn text(&self, css: &str) -> String {
        let element = self.wait_for(css).await;
        element
            .text()
            .await
            .unwrap_or_else(|e| panic!("cannot read the text of `{css}`: {e}"))
            .trim()
            .to_owned()
    }

    /// Waits until the element matching `css` reads `expected` (case-insensitive), reloading
    /// the page between looks: for a state that the server changes on its own.
    pub(crate) async fn wait_text_reloading(&self, css: &str, expected: &str) {
        wait_until(
            &format!("`{css}` reads {expected:?}"),
            PAGE_TIMEOUT,
            async || {
                let found = match self.client.find(Locator::Css(css)).await {
                    Ok(element) => element.text().await.map(|t| t.trim().to_owned()),
                    Err(e) => Err(e),
                };
                match found {
                    Ok(text) if text.eq_ignore_ascii_case(expected) => Ok(()),
                    other => {
                        self.refresh().await;
                        Err(format!("{other:?} at {}", self.path().await))
                    }
                }
            },
        )
        .await;
    }

    /// Clicks the element matching `css` (waited for).
    pub(crate) async fn click(&self, css: &str) {
        self.wait_for(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click `{css}`: {e}"));
    }

    /// Types `text` into the input matching `css` (waited for), replacing its value.
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let input = self.wait_for(css).await;
        input.clear().await.expect("clear the input");
        input
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("cannot type into `{css}`: {e}"));
    }

    /// Forgets every cookie of the current site: the next page is seen logged out.
    pub(crate) async fn delete_cookies(&self) {
        self.client
            .delete_all_cookies()
            .await
            .expect("delete the cookies");
    }

    /// Saves a PNG of the window to `path`.
    pub(crate) async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("take a screenshot");
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        eprintln!("screenshot saved: {}", path.display());
    }

    /// Ends the session (Chromium exits), then stops chromedriver.
    pub(crate) async fn quit(self) {
        let Browser {
            client,
            driver,
            _profile,
        } = self;
        if let Err(e) = client.close().await {
            panic!("cannot end the browser session: {e}\n{}", driver.log_tail());
        }
        drop(driver);
    }
}
