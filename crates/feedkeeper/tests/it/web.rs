//! The dashboard in a real browser: Debian's Chromium driven through WebDriver (chromedriver),
//! against the real server and the simulator, at phone (390 px) and desktop (1280 px) widths.
//! After every step a JavaScript console error, a failed request, or a page wider than the window
//! fails the test, and a screenshot is saved under `target/browser-screenshots/` for people to
//! look at. Without chromedriver installed the tests say so and pass, unless `BROWSER_TESTS=
//! require` (as CI sets it) makes that a failure.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use meta_sim::{AccountEvent, AccountKind};

use crate::helpers::TestApp;

/// Window widths every flow runs at.
pub const WIDTHS: [u32; 2] = [390, 1280];

/// A chromedriver process for one test.
pub struct Driver {
    child: Child,
    url: String,
    _profiles: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_chromedriver() -> Option<std::path::PathBuf> {
    std::env::var_os("CHROMEDRIVER")
        .map(Into::into)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("chromedriver"))
                    .find(|p| p.is_file())
            })
        })
}

impl Driver {
    /// Starts chromedriver, or says why the browser tests cannot run here.
    pub async fn start() -> Option<Driver> {
        let Some(binary) = find_chromedriver() else {
            let required = std::env::var("BROWSER_TESTS").is_ok_and(|v| v == "require");
            assert!(
                !required,
                "BROWSER_TESTS=require, but chromedriver is not installed \
                 (apt-get install chromium chromium-driver)"
            );
            eprintln!(
                "browser tests not run: chromedriver is not installed (apt-get install \
                 chromium chromium-driver)"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _profiles: tempfile::tempdir().unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{}/status", driver.url))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(driver)
    }
}

/// One browser window (its own profile: its own cookies) in a test.
pub struct Window {
    pub client: Client,
    driver_url: String,
    session: String,
    name: String,
    width: u32,
    step: usize,
    /// The next page is a refused form (422), which is not a failed request.
    refusal_expected: bool,
}

impl Window {
    /// A new browser, `width` pixels wide, whose screenshots are named after `test`.
    pub async fn open(driver: &Driver, test: &str, width: u32) -> Window {
        let profile = driver
            ._profiles
            .path()
            .join(format!("{test}-{width}-{}", rand::random::<u32>()));
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let mut options = serde_json::json!({
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic",
                "--hide-scrollbars", format!("--window-size={width},900"),
                format!("--user-data-dir={}", profile.display()),
            ],
        });
        if let Some(binary) = chromium {
            options["binary"] = binary.into();
        }
        if width < 600 {
            // A desktop window cannot be narrower than 500 px: a phone is emulated instead.
            options["mobileEmulation"] = serde_json::json!({
                "deviceMetrics": {"width": width, "height": 844, "pixelRatio": 2.0, "mobile": true, "touch": true},
            });
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert("goog:chromeOptions".into(), options);
        caps.insert(
            "goog:loggingPrefs".into(),
            serde_json::json!({"browser": "ALL"}),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .expect("a browser session");
        let session = client.session_id().await.unwrap().unwrap_or_default();
        Window {
            client,
            driver_url: driver.url.clone(),
            session,
            name: format!("{test}-{width}"),
            width,
            step: 0,
            refusal_expected: false,
        }
    }

    pub async fn go(&mut self, url: &str, label: &str) {
        self.client.goto(url).await.unwrap();
        self.check(label).await;
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// Clicks a form's button that is meant to be refused: the page answers 422 with what
    /// was wrong (the one failed request allowed).
    pub async fn click_refused(&mut self, css: &str, label: &str) {
        self.refusal_expected = true;
        self.click(css, label).await;
        self.refusal_expected = false;
    }

    /// Clicks and waits for the page the click leads to.
    pub async fn click(&mut self, css: &str, label: &str) {
        let before = self.client.current_url().await.unwrap();
        let old_body = self.client.find(Locator::Css("body")).await.unwrap();
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{}: no {css}: {e}", self.name))
            .click()
            .await
            .unwrap();
        // Wait for the old page to go (a form post or a link), then for the new one to load.
        let deadline = Instant::now() + Duration::from_secs(15);
        while old_body.tag_name().await.is_ok() {
            if Instant::now() > deadline {
                panic!("{}: clicking {css} on {before} led nowhere", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.wait_loaded().await;
        self.check(label).await;
    }

    async fn wait_loaded(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ready = self
                .client
                .execute("return document.readyState", vec![])
                .await
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned));
            if ready.as_deref() == Some("complete") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: the page never loaded",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The visible text of the page.
    pub async fn text(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// What every page must satisfy, and a screenshot of it.
    pub async fn check(&mut self, label: &str) {
        self.step += 1;
        let shot = self.client.screenshot().await.unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/browser-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("{}-{:02}-{label}.png", self.name, self.step)),
            shot,
        )
        .unwrap();
        let where_ = format!("{} step {} ({label})", self.name, self.step);
        let widths = self
            .client
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth]",
                vec![],
            )
            .await
            .unwrap();
        let (content, window) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
        assert_eq!(
            window,
            u64::from(self.width),
            "{where_}: the window's width"
        );
        assert!(
            content <= window,
            "{where_}: the page is {content} px wide in a {window} px window ({} px asked)",
            self.width
        );
        let failed = self
            .client
            .execute(
                "return performance.getEntriesByType('navigation')
                    .concat(performance.getEntriesByType('resource'))
                    .filter(e => e.responseStatus >= 400)
                    .map(e => e.name + ' ' + e.responseStatus)",
                vec![],
            )
            .await
            .unwrap();
        let failed: Vec<String> = failed
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .filter(|f| !(self.refusal_expected && f.ends_with(" 422")))
            .collect();
        assert!(failed.is_empty(), "{where_}: failed requests {failed:?}");
        let mut errors = self.console_errors().await;
        errors.retain(|e| !(self.refusal_expected && e.contains("status of 422")));
        assert!(errors.is_empty(), "{where_}: console errors {errors:#?}");
    }

    /// Signs up with the form (and is logged in after).
    pub async fn sign_up(&mut self, app: &TestApp, email: &str) {
        self.go(app.url("/signup").as_str(), "signup").await;
        self.fill("#email", email).await;
        self.fill("#password", "a long enough password").await;
        self.fill("#password_confirm", "a long enough password")
            .await;
        self.click("form[action='/signup'] button[type=submit]", "signed-up")
            .await;
        assert_eq!(self.path().await, "/connections");
    }

    /// Makes the browser live in another time zone (Chrome DevTools, through chromedriver).
    pub async fn set_time_zone(&self, zone: &str) {
        let reply = reqwest::Client::new()
            .post(format!(
                "{}/session/{}/goog/cdp/execute",
                self.driver_url, self.session
            ))
            .json(&serde_json::json!({
                "cmd": "Emulation.setTimezoneOverride",
                "params": {"timezoneId": zone},
            }))
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success(), "{:?}", reply.text().await);
    }

    /// Console messages at level SEVERE since the last call (chromedriver's log endpoint).
    async fn console_errors(&self) -> Vec<String> {
        let reply: serde_json::Value = reqwest::Client::new()
            .post(format!(
                "{}/session/{}/se/log",
                self.driver_url, self.session
            ))
            .json(&serde_json::json!({"type": "browser"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        reply["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_a_new_user_signs_up_connects_checks_and_disconnects() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    for width in WIDTHS {
        let app = TestApp::spawn().await;
        app.instagram_account("bakery", AccountKind::Business, false);
        let mut w = Window::open(&driver, "new-user", width).await;
        w.go(app.url("/").as_str(), "start").await;
        w.sign_up(&app, "owner@example.com").await;
        assert!(w.text().await.contains("No accounts connected yet"));

        // Instagram Login, on the simulator's pages.
        w.click(
            "form[action='/connections/connect/instagram'] button",
            "instagram-login",
        )
        .await;
        w.fill("input[name=username]", "bakery").await;
        w.fill("input[name=password]", "sim-password").await;
        w.click("button[type=submit]", "instagram-consent").await;
        w.click("button[value=allow]", "connected").await;
        assert_eq!(w.path().await, "/connections");
        let text = w.text().await;
        assert!(text.contains("@bakery"), "{text}");

        w.click("form[action$='/refresh'] button", "refreshed")
            .await;
        let text = w.text().await;
        assert!(text.contains("@bakery is active"), "{text}");

        w.click("a[href$='/disconnect']", "disconnect-confirm")
            .await;
        w.click("form[action$='/disconnect'] button", "disconnected")
            .await;
        let text = w.text().await;
        assert!(text.contains("Disconnected @bakery"), "{text}");
        assert!(text.contains("No accounts connected yet"), "{text}");
        w.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_the_demo_fits_a_phone_and_shows_whom_to_log_in_as() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    for width in WIDTHS {
        let app = TestApp::spawn_demo().await;
        let demo = app.state.demo.clone().unwrap();
        let first = &demo.accounts[0];
        let mut w = Window::open(&driver, "demo", width).await;
        w.go(app.url("/").as_str(), "start").await;
        assert!(w.text().await.contains(&first.password));
        w.go(app.url("/signup").as_str(), "signup").await;
        w.fill("#email", "trying@example.com").await;
        w.fill("#password", "a long enough password").await;
        w.fill("#password_confirm", "a long enough password").await;
        w.click("form[action='/signup'] button[type=submit]", "signed-up")
            .await;
        let text = w.text().await;
        assert!(
            text.contains("accounts to log in with") && text.contains(&first.username),
            "{text}"
        );
        // Log in to the simulated Instagram as the first demo account.
        w.click(
            "form[action='/connections/connect/instagram'] button",
            "instagram-login",
        )
        .await;
        w.fill("input[name=username]", &first.username).await;
        w.fill("input[name=password]", &first.password).await;
        w.click("button[type=submit]", "instagram-consent").await;
        w.click("button[value=allow]", "connected").await;
        assert!(w.text().await.contains(&format!("@{}", first.username)));

        // The simulator's page: its buttons break an account as Meta would, on any screen.
        w.go(&format!("{}/__sim/", demo.simulator_url), "simulator")
            .await;
        w.click(
            &format!(
                "form[action='/__sim/ui/accounts/{}'] button[value=password]",
                first.username
            ),
            "password-changed",
        )
        .await;
        assert!(
            w.text().await.contains("The password was changed"),
            "{}",
            w.text().await
        );
        w.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_a_client_link_is_made_copied_and_used_in_a_second_browser() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    for width in WIDTHS {
        let app = TestApp::spawn().await;
        app.instagram_account("client_shop", AccountKind::Business, false);
        let mut agency = Window::open(&driver, "client-link-agency", width).await;
        agency.sign_up(&app, "agency@example.com").await;
        agency.go(app.url("/links").as_str(), "links").await;
        agency.fill("#label", "Shop website").await;
        agency.fill("#client_email", "owner@shop.example").await;
        agency
            .click("form[action='/links'] button[type=submit]", "created")
            .await;
        assert!(agency.path().await.ends_with("/created"));
        let url = agency
            .client
            .find(Locator::Css("#link-url"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .unwrap();
        assert!(url.contains("/l/"), "{url}");
        // The copy button copies (or selects) and says so.
        agency
            .client
            .find(Locator::Css("[data-copy='link-url']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let mut said = String::new();
        for _ in 0..50 {
            said = agency
                .client
                .find(Locator::Css(".copied"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if !said.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            said.starts_with("Copied") || said.starts_with("Selected"),
            "{said:?}"
        );
        agency.check("copied").await;

        // The client, in a browser of their own, logs in through the link.
        let mut client = Window::open(&driver, "client-link-client", width).await;
        client.go(&url, "landing").await;
        client
            .click("form[action$='/instagram'] button", "instagram-login")
            .await;
        client.fill("input[name=username]", "client_shop").await;
        client.fill("input[name=password]", "sim-password").await;
        client.click("button[type=submit]", "consent").await;
        client.click("button[value=allow]", "done").await;
        assert!(client.text().await.contains("client_shop"));
        // A page of its own: Meta's code is gone from the address, and a reload says the same.
        assert_eq!(client.path().await, "/connect/done");
        let address = client.client.current_url().await.unwrap();
        assert!(!address.as_str().contains("code="), "{address}");
        client.client.refresh().await.unwrap();
        assert!(client.text().await.contains("client_shop"));
        client.check("reloaded").await;
        client.close().await;

        agency
            .go(app.url("/connections").as_str(), "agency-sees-it")
            .await;
        assert!(agency.text().await.contains("@client_shop"));
        agency.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_a_business_connection_is_picked_from_pages_broken_and_reconnected() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    for width in WIDTHS {
        let app = TestApp::spawn().await;
        crate::connect_flows::two_pages_of_one_person(&app);
        let mut w = Window::open(&driver, "facebook-pages", width).await;
        // Someone in Tokyo: every time on the dashboard is theirs, not UTC.
        w.set_time_zone("Asia/Tokyo").await;
        w.sign_up(&app, "owner@example.com").await;

        // Facebook Login on the simulator's pages, then the Page picker.
        w.click(
            "form[action='/connections/connect/facebook'] button",
            "facebook-login",
        )
        .await;
        w.fill("input[name=email]", "harbor.owner").await;
        w.fill("input[name=pass]", "sim-password").await;
        w.click("button[type=submit]", "facebook-consent").await;
        w.click("button[value=allow]", "page-picker").await;
        assert!(w.path().await.starts_with("/connect/facebook/pages/"));
        let text = w.text().await;
        assert!(
            text.contains("@harbor_cafe") && text.contains("@harbor_bar"),
            "{text}"
        );
        // Only the bar.
        let cafe = w
            .client
            .find(Locator::XPath(
                "//label[contains(., '@harbor_cafe')]//input[@type='checkbox']",
            ))
            .await
            .unwrap();
        cafe.click().await.unwrap();
        w.click(
            "form[action^='/connect/facebook/pages/'] button.primary",
            "picked",
        )
        .await;
        assert_eq!(w.path().await, "/connections");
        let text = w.text().await;
        assert!(
            text.contains("@harbor_bar") && !text.contains("@harbor_cafe"),
            "{text}"
        );
        assert!(text.contains("Business connection FB"), "{text}");
        assert!(text.contains("GMT+9") && !text.contains(" UTC"), "{text}");

        // The password changes on Facebook: Refresh finds out, the menu counts it, and
        // Reconnect (Facebook Login again, the one Page it is for) brings it back.
        app.sim
            .apply_event("harbor_bar", AccountEvent::PasswordChanged)
            .await
            .unwrap();
        app.advance(600);
        w.click("form[action$='/refresh'] button", "refused").await;
        let text = w.text().await;
        assert!(text.contains("@harbor_bar needs reconnecting"), "{text}");
        let count = w
            .client
            .find(Locator::Css(".nav .count"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(count.starts_with('1'), "{count:?}");
        w.click("form[action$='/reconnect'] button", "reconnect-login")
            .await;
        w.fill("input[name=email]", "harbor.owner").await;
        w.fill("input[name=pass]", "sim-password").await;
        w.click("button[type=submit]", "reconnect-consent").await;
        w.click("button[value=allow]", "reconnected").await;
        assert_eq!(w.path().await, "/connections");
        let text = w.text().await;
        assert!(text.contains("Reconnected @harbor_bar"), "{text}");
        assert!(!text.contains("needs reconnecting"), "{text}");
        assert!(
            w.client.find(Locator::Css(".nav .count")).await.is_err(),
            "nothing left to act on"
        );
        w.close().await;
    }
}

/// A page on another origin (another port of this machine) that embeds `embed_code`, as a
/// customer's website would.
async fn customer_site(embed_code: String) -> (String, tokio::task::JoinHandle<()>) {
    customer_site_styled(embed_code, "").await
}

/// [`customer_site`] with more style on its body (a dark page, say), and console warnings
/// kept in `window.warned`.
async fn customer_site_styled(
    embed_code: String,
    body_style: &str,
) -> (String, tokio::task::JoinHandle<()>) {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\"><title>Bakery</title>\
         <script>window.warned=[];console.warn=function(m){{window.warned.push(String(m))}};\
         window.cls=0;new PerformanceObserver(function(l){{l.getEntries().forEach(function(e){{\
         if(!e.hadRecentInput){{window.cls+=e.value;window.shifts=(window.shifts||[]).concat([e.value+' @'+Math.round(e.startTime)+' '+(e.sources||[]).map(function(s){{return (s.node&&s.node.nodeName)+' '+JSON.stringify(s.previousRect)+'->'+JSON.stringify(s.currentRect)}}).join(';')])}}}})}}).observe({{type:'layout-shift',buffered:true}});</script>\
         </head><body style=\"margin:0;font-family:sans-serif;{body_style}\">\
         <h1 style=\"margin:8px\">Our bakery</h1>{embed_code}<p id=\"after\">Opening hours</p>\
         </body></html>"
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/",
        listener.local_addr().unwrap().port()
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_a_widget_is_made_and_embedded_on_another_site() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    for width in WIDTHS {
        let app = TestApp::spawn().await;
        // Instagram's CDN refuses other sites' pages (`cross-origin-resource-policy:
        // same-origin`): the widget shows feedkeeper's own copies, so that does not matter.
        app.instagram_account("bakery", AccountKind::Business, false);
        for i in 0..9 {
            app.sim
                .post_media(
                    "bakery",
                    meta_sim::NewMedia {
                        kind: if i == 8 {
                            meta_sim::MediaKind::CarouselAlbum
                        } else {
                            meta_sim::MediaKind::Image
                        },
                        caption: Some(if i == 8 {
                            "<img src=x onerror=\"window.parent.pwned=1;window.pwned=1\">\
                             <script>window.pwned=1</script> #bread @baker"
                                .to_owned()
                        } else {
                            format!("Loaf number {i}")
                        }),
                        ..Default::default()
                    },
                )
                .unwrap();
        }
        let mut w = Window::open(&driver, "widget", width).await;
        w.sign_up(&app, "owner@example.com").await;
        let owner = crate::dashboard::user_id(&app, "owner@example.com").await;
        crate::dashboard::connect_instagram(&app, owner, "bakery").await;
        feedkeeper::jobs::run_due_now(&app.state, "test")
            .await
            .unwrap();

        // The Widgets section: a slider with captions below.
        w.go(app.url("/widgets").as_str(), "widgets").await;
        w.click("a[href='/widgets/new']", "new-widget").await;
        // The preview at a computer's width is a 1 200 px frame scaled into its column, and
        // on a phone the preview comes before the form and stays in view.
        let previewed = w
            .client
            .execute(
                "document.querySelector('[data-preview-width=\"1200\"]').click();\
                 var f=document.getElementById('widget-preview');\
                 var stage=document.getElementById('preview-stage').getBoundingClientRect();\
                 var form=document.getElementById('widget-form').getBoundingClientRect();\
                 var section=document.querySelector('.widget-preview');\
                 return [f.style.width, f.getBoundingClientRect().width <= stage.width + 1,\
                   section.getBoundingClientRect().top < form.top || innerWidth >= 960,\
                   getComputedStyle(section).position === 'sticky' || innerWidth >= 960]",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            previewed,
            serde_json::json!(["1200px", true, true, true]),
            "preview widths"
        );
        w.check("preview-computer").await;
        w.fill("#name", "Bakery homepage").await;
        w.client
            .find(Locator::Css("input[name=layout][value=slider]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        w.client
            .find(Locator::Css("input[name=captions][value=below]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        w.click("#widget-form button[type=submit]", "created").await;
        assert!(
            w.path().await.starts_with("/widgets/"),
            "{}",
            w.text().await
        );
        let code = w
            .client
            .find(Locator::Css("#embed-code"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .unwrap();
        assert!(code.contains("embed.js"), "{code}");
        // On any screen: the menu on one line, and the whole embed code in view (no box to
        // scroll inside).
        let fits = w
            .client
            .execute(
                "var links=Array.from(document.querySelectorAll('.nav a'));\
                 var tops=links.map(function(a){return Math.round(a.getBoundingClientRect().top)});\
                 var code=document.getElementById('embed-code');\
                 return [tops.every(function(t){return t===tops[0]}), code.scrollHeight <= code.clientHeight + 1]",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            fits,
            serde_json::json!([true, true]),
            "menu on one line, code in view"
        );
        // The widget's pictures are stored (a node's workers do it within seconds).
        feedkeeper::jobs::run_due_now(&app.state, "test")
            .await
            .unwrap();

        // The customer's site embeds it.
        let (site, server) = customer_site(code).await;
        w.go(&site, "embedded").await;
        // The iframe takes its content's height.
        let mut height = String::new();
        for _ in 0..100 {
            height = w
                .client
                .execute(
                    "return document.querySelector('iframe').style.height",
                    vec![],
                )
                .await
                .unwrap()
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if height != "400px" && !height.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(height != "400px" && height.ends_with("px"), "{height:?}");
        w.check("sized").await;

        w.client.enter_frame(0).await.unwrap();
        let in_frame = w.client.clone();
        let frame = |script: &'static str| {
            let client = in_frame.clone();
            async move { client.execute(script, vec![]).await.unwrap() }
        };
        // Posts render, images load, and the hostile caption is text.
        let mut loaded = serde_json::json!(0);
        for _ in 0..100 {
            loaded = frame(
                "return Array.from(document.querySelectorAll('.fk-post img'))
                    .filter(i => i.complete && i.naturalWidth > 0).length",
            )
            .await;
            if loaded.as_u64().unwrap_or_default() >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(loaded.as_u64().unwrap() >= 1, "{loaded}");
        let sources = frame(
            "return Array.from(document.querySelectorAll('.fk-post img'))
                .filter(i => i.complete && i.naturalWidth > 0).map(i => i.currentSrc)",
        )
        .await;
        let own = app.url("/i/").to_string();
        for source in sources.as_array().unwrap() {
            assert!(source.as_str().unwrap().starts_with(&own), "{sources}");
        }
        // The frame follows its content as the pictures settle (the embed script hears of each
        // change): it comes to the content's height, on a loaded machine within seconds.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let content = frame(
                "return Math.ceil(document.getElementById('fk').getBoundingClientRect().bottom)",
            )
            .await
            .as_u64()
            .unwrap();
            w.client.enter_parent_frame().await.unwrap();
            let height = w
                .client
                .execute(
                    "return document.querySelector('iframe').style.height",
                    vec![],
                )
                .await
                .unwrap();
            w.client.enter_frame(0).await.unwrap();
            let css_height: u64 = height
                .as_str()
                .unwrap_or_default()
                .trim_end_matches("px")
                .parse()
                .unwrap_or(0);
            if css_height.abs_diff(content) <= 2 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "iframe {css_height}px, content {content}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let caption = frame(
            "return Array.from(document.querySelectorAll('.fk-caption'))
                .map(c => c.textContent).join('|')",
        )
        .await;
        assert!(
            caption
                .as_str()
                .unwrap()
                .contains("<script>window.pwned=1</script>"),
            "{caption}"
        );
        assert_eq!(frame("return typeof window.pwned").await, "undefined");
        // The slider moves.
        frame("document.querySelector('.fk-next').click(); return 0").await;
        let mut moved = serde_json::json!(0);
        for _ in 0..50 {
            moved = frame("return document.getElementById('fk-posts').scrollLeft").await;
            if moved.as_f64().unwrap_or_default() > 0.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(moved.as_f64().unwrap() > 0.0, "{moved}");
        // The lightbox opens with the post and its caption, and closes.
        frame("document.querySelector('.fk-open').click(); return 0").await;
        assert_eq!(
            frame("return document.getElementById('fk-lightbox').open").await,
            true
        );
        let text = frame("return document.querySelector('.fk-lightbox-body').textContent").await;
        assert!(
            text.as_str().unwrap().contains("View on Instagram"),
            "{text}"
        );
        w.client.enter_parent_frame().await.unwrap();
        w.check("lightbox").await;
        w.client.enter_frame(0).await.unwrap();
        frame("document.querySelector('.fk-close').click(); return 0").await;
        assert_eq!(
            frame("return document.getElementById('fk-lightbox').open").await,
            false
        );
        w.client.enter_parent_frame().await.unwrap();
        assert_eq!(
            w.client
                .execute("return typeof window.pwned", vec![])
                .await
                .unwrap(),
            "undefined"
        );
        w.check("closed").await;
        server.abort();
        w.close().await;
    }
}

/// What a page downloaded for its post images, and how much its layout shifted.
#[derive(Debug)]
struct Downloaded {
    images: u64,
    bytes: u64,
    layout_shift: f64,
}

/// Opens `url`, scrolls through it until every post image has loaded, and reads the bytes of
/// the images it downloaded (Resource Timing) and its cumulative layout shift.
async fn download(w: &mut Window, url: &str, label: &str) -> Downloaded {
    w.go(url, label).await;
    w.client
        .execute(
            "window.__shift = 0;
             new PerformanceObserver(list => list.getEntries().forEach(e => {
                 if (!e.hadRecentInput) window.__shift += e.value;
             })).observe({type: 'layout-shift', buffered: true});
             return 0",
            vec![],
        )
        .await
        .unwrap();
    let mut pending = serde_json::json!(-1);
    for _ in 0..200 {
        pending = w
            .client
            .execute(
                "window.scrollBy(0, 400);
                 return Array.from(document.querySelectorAll('.fk-open img'))
                     .filter(i => !(i.complete && i.naturalWidth > 0)).length",
                vec![],
            )
            .await
            .unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if pending != 0 {
        let states = w
            .client
            .execute(
                "return Array.from(document.querySelectorAll('.fk-open img'))
                     .map(i => [i.currentSrc || i.src, i.complete, i.naturalWidth].join(' '))",
                vec![],
            )
            .await
            .unwrap();
        panic!("every post image loads: {states:#}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let measured = w
        .client
        .execute(
            "const images = performance.getEntriesByType('resource')
                 .filter(e => e.initiatorType === 'img' && !e.name.startsWith('data:'));
             return [images.length, images.reduce((sum, e) => sum + e.encodedBodySize, 0),
                     window.__shift];",
            vec![],
        )
        .await
        .unwrap();
    Downloaded {
        images: measured[0].as_u64().unwrap(),
        bytes: measured[1].as_u64().unwrap(),
        layout_shift: measured[2].as_f64().unwrap(),
    }
}

#[tokio::test]
async fn browser_a_phone_downloads_a_tenth_of_instagrams_bytes_and_nothing_shifts() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    // For the comparison only: Instagram's originals must load in the page at all.
    app.sim
        .patch_settings(&serde_json::json!({"cdn_corp_header": false}))
        .unwrap();
    app.instagram_account("bakery", AccountKind::Business, false);
    for i in 0..12 {
        app.sim
            .post_media(
                "bakery",
                meta_sim::NewMedia {
                    caption: Some(format!("Loaf number {i}")),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    app.signup_and_login("owner@example.com").await;
    let owner = crate::dashboard::user_id(&app, "owner@example.com").await;
    let c = crate::dashboard::connect_instagram(&app, owner, "bakery").await;
    let widget = feedkeeper::widgets::create(
        &app.state,
        owner,
        "Bakery",
        c.id,
        &feedkeeper::widgets::settings::WidgetSettings::default(),
    )
    .await
    .unwrap();
    let page = app.url(&format!("/w/{}", widget.public_id)).to_string();
    // Synced, images not stored yet: the grid shows Instagram's originals.
    crate::helpers::run_kind(&app.state, feedkeeper::jobs::sync::SyncWork).await;
    let mut w = Window::open(&driver, "image-bytes", 390).await;
    let instagram = download(&mut w, &page, "instagram-originals").await;
    // The images are stored; every node sees the change within a poll.
    feedkeeper::jobs::run_due_now(&app.state, "test")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reqwest::get(&page)
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains("<picture>")
    {
        assert!(
            Instant::now() < deadline,
            "the widget never showed stored images"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // (Another address for the same widget: the browser keeps the first document for a minute,
    // as its Cache-Control allows.)
    let stored = download(&mut w, &format!("{page}?stored"), "stored-variants").await;
    println!(
        "390 px phone, 12-post grid: Instagram's originals {instagram:?}, stored variants {stored:?}"
    );
    let record = serde_json::json!({
        "instagram": {"images": instagram.images, "bytes": instagram.bytes, "cls": instagram.layout_shift},
        "stored": {"images": stored.images, "bytes": stored.bytes, "cls": stored.layout_shift},
    });
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-screenshots");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("image-bytes.json"), record.to_string());
    assert!(
        instagram.images >= 12 && stored.images >= 12,
        "{instagram:?} {stored:?}"
    );
    assert!(
        stored.bytes * 10 <= instagram.bytes,
        "stored {} bytes against Instagram's {}",
        stored.bytes,
        instagram.bytes
    );
    assert_eq!(
        stored.layout_shift, 0.0,
        "no layout shift while images load"
    );
    w.close().await;
}

/// Runs `script` in the frame of the page open in `w` (the first iframe), and comes back.
async fn in_frame(w: &Window, script: &str) -> serde_json::Value {
    w.client.clone().enter_frame(0).await.unwrap();
    let value = w.client.execute(script, vec![]).await.unwrap();
    w.client.clone().enter_parent_frame().await.unwrap();
    value
}

/// Polls `script` in the first frame until it returns `want` (about five seconds).
async fn frame_until(w: &Window, script: &str, want: serde_json::Value) -> serde_json::Value {
    let mut got = serde_json::Value::Null;
    for _ in 0..100 {
        got = in_frame(w, script).await;
        if got == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    got
}

/// Waits until embed.js has given the page's (first) widget frame the height its content
/// reported.
async fn wait_framed(w: &Window) {
    for _ in 0..100 {
        let h = w
            .client
            .execute(
                "var f=document.querySelector('iframe');return f?f.style.height:''",
                vec![],
            )
            .await
            .unwrap();
        if h.as_str().is_some_and(|h| !h.is_empty() && h != "400px") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the frame never took its height");
}

/// WCAG's contrast ratio of two `rgb(…)` colours.
fn contrast(a: &str, b: &str) -> f64 {
    fn luminance(css: &str) -> f64 {
        let parts: Vec<f64> = css
            .trim_start_matches("rgba(")
            .trim_start_matches("rgb(")
            .trim_end_matches(')')
            .split(',')
            .take(3)
            .map(|p| p.trim().parse::<f64>().unwrap() / 255.0)
            .map(|c| {
                if c <= 0.039_28 {
                    c / 12.92
                } else {
                    ((c + 0.055) / 1.055).powf(2.4)
                }
            })
            .collect();
        0.2126 * parts[0] + 0.7152 * parts[1] + 0.0722 * parts[2]
    }
    let (x, y) = (luminance(a), luminance(b));
    (x.max(y) + 0.05) / (x.min(y) + 0.05)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_the_widget_reads_and_navigates_well_on_any_site_and_screen() {
    use feedkeeper::widgets::settings::{Captions, Layout, Theme, WidgetSettings};
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    app.instagram_account("bakery", AccountKind::Business, false);
    for i in 0..6 {
        app.sim
            .post_media(
                "bakery",
                meta_sim::NewMedia {
                    kind: if i == 5 {
                        meta_sim::MediaKind::CarouselAlbum
                    } else {
                        meta_sim::MediaKind::Image
                    },
                    children: if i == 5 {
                        vec![
                            meta_sim::ChildKind::Image,
                            meta_sim::ChildKind::Video,
                            meta_sim::ChildKind::Image,
                        ]
                    } else {
                        Vec::new()
                    },
                    caption: Some(format!(
                        "Loaf number {i}, with a caption long enough to wrap"
                    )),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    let session = app.signup_and_login("owner@example.com").await;
    let owner = crate::dashboard::user_id(&app, "owner@example.com").await;
    let c = crate::dashboard::connect_instagram(&app, owner, "bakery").await;
    let widget = |layout, theme, transparent, captions| {
        let state = app.state.clone();
        async move {
            let settings = WidgetSettings {
                layout,
                theme,
                transparent,
                captions,
                columns_mobile: 2,
                ..WidgetSettings::default()
            };
            let made = feedkeeper::widgets::create(&state, owner, "w", c.id, &settings)
                .await
                .unwrap();
            (made.id, made.public_id)
        }
    };
    let (slider_id, slider) = widget(Layout::Slider, Theme::Light, false, Captions::Below).await;
    let (_, grid_auto) = widget(Layout::Grid, Theme::Auto, false, Captions::Below).await;
    let (_, grid_dark) = widget(Layout::Grid, Theme::Dark, false, Captions::Below).await;
    let (grid_light_id, grid_light) =
        widget(Layout::Grid, Theme::Light, false, Captions::Below).await;
    // Transparent: the page shows through where the theme's text reads on it.
    let (_, clear_light) = widget(Layout::Grid, Theme::Light, true, Captions::Below).await;
    let (_, clear_dark) = widget(Layout::Grid, Theme::Dark, true, Captions::Below).await;
    let (_, clear_auto) = widget(Layout::Grid, Theme::Auto, true, Captions::Below).await;
    feedkeeper::jobs::run_due_now(&app.state, "test")
        .await
        .unwrap();
    // The embed codes as the dashboard gives them (with the shape embed.js reserves room for).
    let code_of = |id: feedkeeper::ids::WidgetId| {
        let session = &session;
        async move {
            let page = session.get(&format!("/widgets/{id}")).await.body;
            let at = page.find("<textarea id=\"embed-code\"").unwrap();
            let start = at + page[at..].find('>').unwrap() + 1;
            let end = start + page[start..].find("</textarea>").unwrap();
            page[start..end]
                .replace("&#34;", "\"")
                .replace("&#60;", "<")
                .replace("&#62;", ">")
                .replace("&#38;", "&")
        }
    };
    let (plain_grid_id, _) = widget(Layout::Grid, Theme::Light, false, Captions::Hover).await;
    let (plain_slider_id, _) = widget(Layout::Slider, Theme::Light, false, Captions::None).await;
    let grid_code = code_of(plain_grid_id).await;
    let slider_code = code_of(plain_slider_id).await;
    assert!(
        grid_code.contains(" style=\"padding-top:min("),
        "{grid_code}"
    );
    let _ = (slider_id, grid_light_id);
    let embed = |id: &str| {
        format!(
            "<div class=\"feedkeeper-widget\" data-widget=\"{id}\"></div>\
             <script src=\"{}embed.js\" async></script>",
            app.url("/")
        )
    };
    for width in WIDTHS {
        let mut w = Window::open(&driver, "polish", width).await;

        // Nothing on the site moves when the feed arrives: embed.js reserves its height
        // from the embed code (a grid and a slider, captions on hover).
        for (code, label) in [(&grid_code, "cls-grid"), (&slider_code, "cls-slider")] {
            let (site, server) = customer_site(code.clone()).await;
            w.go(&site, label).await;
            wait_framed(&w).await;
            // The first row's images loaded (the rest load when scrolled to), then the shifts
            // are read.
            let loaded = "return Array.from(document.querySelectorAll('.fk-post img:not([loading=lazy])'))\
                .every(function(i){return i.complete})";
            assert_eq!(frame_until(&w, loaded, true.into()).await, true);
            tokio::time::sleep(Duration::from_millis(300)).await;
            let cls = w
                .client
                .execute("return window.cls", vec![])
                .await
                .unwrap()
                .as_f64()
                .unwrap();
            let shifts = w
                .client
                .execute("return window.shifts", vec![])
                .await
                .unwrap();
            assert_eq!(cls, 0.0, "{label}: cumulative layout shift {cls}: {shifts}");
            server.abort();
        }

        // Every theme's text reads against what is painted behind it, on a light and on a
        // dark page; "Automatic" follows the page. A transparent widget shows the page where
        // its text reads on it, and paints its theme's background where it would not.
        for (id, host, expect_dark, see_through) in [
            (&grid_light, "background:#fdf6e3", false, false),
            (&grid_light, "background:#111;color:#eee", false, false),
            (&grid_dark, "background:#fdf6e3", true, false),
            (&grid_dark, "background:#111;color:#eee", true, false),
            (&grid_auto, "background:#fdf6e3", false, false),
            (&grid_auto, "background:#111;color:#eee", true, false),
            (&clear_light, "background:#fdf6e3", false, true),
            (&clear_light, "background:#111;color:#eee", false, false),
            (&clear_dark, "background:#fdf6e3", true, false),
            (&clear_dark, "background:#111;color:#eee", true, true),
            (&clear_auto, "background:#fdf6e3", false, true),
            (&clear_auto, "background:#111;color:#eee", true, true),
        ] {
            let (site, server) = customer_site_styled(embed(id), host).await;
            w.go(&site, "theme").await;
            wait_framed(&w).await;
            let colours = in_frame(
                &w,
                "var fk=document.getElementById('fk');\
                 var tile=document.querySelector('.fk-open img').getBoundingClientRect();\
                 return [getComputedStyle(fk).color, getComputedStyle(document.body).backgroundColor,\
                   getComputedStyle(document.querySelector('.fk-caption')).color,\
                   Math.abs(tile.width - tile.height) <= 1]",
            )
            .await;
            assert_eq!(colours[3], true, "grid tiles are square: {colours}");
            let (fg, own, caption) = (
                colours[0].as_str().unwrap(),
                colours[1].as_str().unwrap(),
                colours[2].as_str().unwrap(),
            );
            // What is painted behind the text: the frame's own background, or the page's.
            let page = w
                .client
                .execute(
                    "return getComputedStyle(document.body).backgroundColor",
                    vec![],
                )
                .await
                .unwrap();
            let clear = own.starts_with("rgba(0, 0, 0, 0");
            assert_eq!(clear, see_through, "{id} on {host}: painted {own}");
            let bg = if clear { page.as_str().unwrap() } else { own };
            assert!(contrast(fg, bg) >= 4.5, "{id} on {host}: {fg} on {bg}");
            assert!(
                contrast(caption, bg) >= 4.5,
                "{id} on {host}: {caption} on {bg}"
            );
            let dark = contrast(bg, "rgb(0, 0, 0)") < contrast(bg, "rgb(255, 255, 255)");
            assert_eq!(dark, expect_dark, "{id} on {host}: {bg}");
            server.abort();
        }

        // A widget that does not exist collapses and tells the site's developer.
        let (site, server) = customer_site(embed("nosuchwidget0000")).await;
        w.go(&site, "missing").await;
        let mut collapsed = serde_json::Value::Null;
        for _ in 0..100 {
            collapsed = w
                .client
                .execute(
                    "var f=document.querySelector('iframe');\
                     return [f.getBoundingClientRect().height, window.warned.join('|')]",
                    vec![],
                )
                .await
                .unwrap();
            if collapsed[0] == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(collapsed[0], 0, "{collapsed}");
        assert!(
            collapsed[1].as_str().unwrap().contains("nosuchwidget0000"),
            "{collapsed}"
        );
        server.abort();

        // The slider: arrows across the pictures (not the captions), disabled at the ends.
        let (site, server) = customer_site(embed(&slider)).await;
        w.go(&site, "slider").await;
        wait_framed(&w).await;
        let state = "var p=document.querySelector('.fk-prev'),n=document.querySelector('.fk-next');\
            var tile=document.querySelector('.fk-open').getBoundingClientRect();\
            var a=n.getBoundingClientRect();\
            return [p.disabled, n.disabled, a.top >= tile.top && a.bottom <= tile.bottom]";
        let start = frame_until(&w, state, serde_json::json!([true, false, true])).await;
        assert_eq!(start, serde_json::json!([true, false, true]));
        in_frame(
            &w,
            "var l=document.getElementById('fk-posts');l.scrollLeft=l.scrollWidth;return 0",
        )
        .await;
        let end = frame_until(&w, state, serde_json::json!([false, true, true])).await;
        assert_eq!(end, serde_json::json!([false, true, true]));
        w.check("slider-end").await;
        server.abort();

        // The album: nothing hidden is fetched until shown; in the lightbox, buttons, keys and
        // swiping move through it, with the position shown.
        let (site, server) = customer_site(embed(&grid_light)).await;
        w.go(&site, "album").await;
        wait_framed(&w).await;
        let posters = in_frame(
            &w,
            "var hidden=Array.from(document.querySelectorAll('.fk-full [data-poster], .fk-full [data-src]'))\
               .map(function(e){return e.getAttribute('data-poster')||e.getAttribute('data-src')});\
             var fetched=performance.getEntriesByType('resource').map(function(r){return r.name});\
             return [hidden.length, hidden.filter(function(h){return fetched.indexOf(h)>=0}).length]",
        )
        .await;
        assert!(posters[0].as_u64().unwrap() >= 3, "{posters}");
        assert_eq!(posters[1], 0, "hidden media were fetched: {posters}");
        in_frame(
            &w,
            "document.querySelector('.fk-type-carousel .fk-open').click();return 0",
        )
        .await;
        let count = "var d=document.getElementById('fk-lightbox');\
            return d.open ? d.querySelector('.fk-count').textContent : 'closed'";
        assert_eq!(frame_until(&w, count, "1 / 3".into()).await, "1 / 3");
        assert_eq!(
            in_frame(
                &w,
                "return document.querySelector('#fk-lightbox .fk-item-prev').disabled"
            )
            .await,
            true
        );
        in_frame(
            &w,
            "document.querySelector('#fk-lightbox .fk-item-next').click();return 0",
        )
        .await;
        assert_eq!(frame_until(&w, count, "2 / 3".into()).await, "2 / 3");
        // The video's poster loads now that it is shown.
        let poster = "return document.querySelector('#fk-lightbox video').poster !== ''";
        assert_eq!(frame_until(&w, poster, true.into()).await, true);
        in_frame(
            &w,
            "document.getElementById('fk-lightbox').dispatchEvent(new KeyboardEvent('keydown',{key:'ArrowRight',bubbles:true}));return 0",
        )
        .await;
        assert_eq!(frame_until(&w, count, "3 / 3".into()).await, "3 / 3");
        assert_eq!(
            in_frame(
                &w,
                "return document.querySelector('#fk-lightbox .fk-item-next').disabled"
            )
            .await,
            true
        );
        // A swipe is a scroll of the row.
        in_frame(
            &w,
            "var m=document.querySelector('#fk-lightbox .fk-media');m.scrollLeft=0;return 0",
        )
        .await;
        assert_eq!(frame_until(&w, count, "1 / 3".into()).await, "1 / 3");
        w.check("album").await;
        server.abort();

        // Opened from the last row, with the page scrolled down, the lightbox is on the screen.
        let (site, server) = customer_site(embed(&grid_light)).await;
        w.go(&site, "last-row").await;
        wait_framed(&w).await;
        w.client
            .execute(
                "window.scrollTo(0, document.body.scrollHeight); return 0",
                vec![],
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        in_frame(
            &w,
            "var all=document.querySelectorAll('.fk-open');all[all.length-1].click();return 0",
        )
        .await;
        let opened = "return document.getElementById('fk-lightbox').open";
        assert_eq!(frame_until(&w, opened, true.into()).await, true);
        tokio::time::sleep(Duration::from_millis(300)).await;
        w.client.clone().enter_frame(0).await.unwrap();
        let inner = w
            .client
            .execute(
                "var r=document.getElementById('fk-lightbox').getBoundingClientRect();\
                 return [r.top, r.bottom]",
                vec![],
            )
            .await
            .unwrap();
        w.client.clone().enter_parent_frame().await.unwrap();
        let outer = w
            .client
            .execute(
                "return [document.querySelector('iframe').getBoundingClientRect().top, window.innerHeight]",
                vec![],
            )
            .await
            .unwrap();
        let (frame_top, screen) = (outer[0].as_f64().unwrap(), outer[1].as_f64().unwrap());
        let (top, bottom) = (
            frame_top + inner[0].as_f64().unwrap(),
            frame_top + inner[1].as_f64().unwrap(),
        );
        assert!(
            top >= -1.0 && bottom <= screen + 1.0,
            "the lightbox spans {top}..{bottom} of a {screen} px screen"
        );
        // The whole page is dimmed, not only the frame: the page's own text, outside the
        // frame, is under the veil, and the frame above it.
        let veiled = w
            .client
            .execute(
                "var v=document.querySelector('[data-feedkeeper-veil]');                 if(!v) return 'no veil';                 var h=document.querySelector('h1').getBoundingClientRect();                 var f=document.querySelector('iframe').getBoundingClientRect();                 var under=document.elementFromPoint(2, 2);                 var inFrame=f.top<=2&&f.bottom>=2;                 return [inFrame || under===v,                   document.elementFromPoint((f.left+f.right)/2, Math.max(f.top,0)+(Math.min(f.bottom,innerHeight)-Math.max(f.top,0))/2)===document.querySelector('iframe'),                   getComputedStyle(v).backgroundColor, h.height>0]",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            veiled,
            serde_json::json!([true, true, "rgba(0, 0, 0, 0.6)", true]),
            "{veiled}"
        );
        let still = w
            .client
            .execute(
                "return [document.documentElement.style.overflow,\
                 document.getElementById('after').closest('[inert]') !== null]",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(still, serde_json::json!(["hidden", true]), "{still}");
        w.check("last-row-lightbox").await;
        // A click on the dimmed page closes the lightbox, and the veil goes with it.
        w.client
            .execute(
                "document.querySelector('[data-feedkeeper-veil]').click(); return 0",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(frame_until(&w, opened, false.into()).await, false);
        let gone = w
            .client
            .execute(
                "var f=document.querySelector('iframe');\
                 return [document.querySelector('[data-feedkeeper-veil]')===null, f.style.zIndex,\
                 document.documentElement.style.overflow, document.querySelectorAll('[inert]').length]",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(gone, serde_json::json!([true, "", "", 0]), "{gone}");
        // Escape on the page closes it too.
        in_frame(
            &w,
            "var all=document.querySelectorAll('.fk-open');all[all.length-1].click();return 0",
        )
        .await;
        assert_eq!(frame_until(&w, opened, true.into()).await, true);
        let mut veiled_again = false;
        for _ in 0..50 {
            let v = w
                .client
                .execute(
                    "return document.querySelector('[data-feedkeeper-veil]')!==null",
                    vec![],
                )
                .await
                .unwrap();
            if v == true {
                veiled_again = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(veiled_again, "the page is dimmed again");
        w.client
            .execute(
                "document.dispatchEvent(new KeyboardEvent('keydown',{key:'Escape'}));return 0",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(frame_until(&w, opened, false.into()).await, false);
        server.abort();
        w.close().await;
    }
}

/// axe-core (vendored from npm: `tests/it/vendor/axe.min.js`, MPL-2.0) run on the page open in
/// `w`: the rules it breaks, each with up to three of the elements.
async fn accessibility_violations(w: &Window) -> Vec<String> {
    const AXE: &str = include_str!("vendor/axe.min.js");
    w.client.execute(AXE, vec![]).await.unwrap();
    let found = w
        .client
        .execute_async(
            "var done = arguments[arguments.length - 1];\
             axe.run(document, {resultTypes: ['violations']}).then(function (r) {\
               done(r.violations.map(function (v) {\
                 return v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 3)\
                   .map(function (n) { return n.target.join(' ') + ' ' + (n.failureSummary || '').split('\\n').slice(1, 2).join(''); })\
                   .join(' | ');\
               }));\
             }, function (e) { done(['axe failed: ' + e]); });",
            vec![],
        )
        .await
        .unwrap();
    found
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_axe_finds_nothing_on_the_widget_in_every_layout_or_on_the_dashboard() {
    use feedkeeper::widgets::settings::{Layout, WidgetSettings};
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    app.instagram_account("bakery", AccountKind::Business, false);
    for i in 0..4 {
        app.sim
            .post_media(
                "bakery",
                meta_sim::NewMedia {
                    kind: if i == 3 {
                        meta_sim::MediaKind::CarouselAlbum
                    } else {
                        meta_sim::MediaKind::Image
                    },
                    caption: Some(format!("Loaf number {i} #bread @baker")),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    for width in WIDTHS {
        let mut w = Window::open(&driver, "axe", width).await;
        w.sign_up(&app, &format!("owner{width}@example.com")).await;
        let owner = crate::dashboard::user_id(&app, &format!("owner{width}@example.com")).await;
        let c = crate::dashboard::connect_instagram(&app, owner, "bakery").await;
        let mut widget_ids = Vec::new();
        let mut public = Vec::new();
        for layout in [Layout::Grid, Layout::Slider, Layout::Masonry] {
            let settings = WidgetSettings {
                layout,
                ..WidgetSettings::default()
            };
            let made = feedkeeper::widgets::create(&app.state, owner, "Shop", c.id, &settings)
                .await
                .unwrap();
            widget_ids.push(made.id);
            public.push(made.public_id);
        }
        feedkeeper::jobs::run_due_now(&app.state, "test")
            .await
            .unwrap();
        let mut pages: Vec<String> = public.iter().map(|id| format!("/w/{id}")).collect();
        pages.extend(
            [
                "/connections".to_owned(),
                format!("/connections/{}", c.id),
                format!("/connections/{}/disconnect", c.id),
                "/widgets".to_owned(),
                "/widgets/new".to_owned(),
                format!("/widgets/{}", widget_ids[0]),
                "/links".to_owned(),
                "/account".to_owned(),
            ]
            .into_iter(),
        );
        let mut found = Vec::new();
        for page in &pages {
            w.go(app.url(page).as_str(), "axe").await;
            for violation in accessibility_violations(&w).await {
                found.push(format!("{page} at {width}px: {violation}"));
            }
        }
        // The lightbox, open on an album.
        w.go(app.url(&pages[0]).as_str(), "axe-lightbox").await;
        w.client
            .execute(
                "document.querySelector('.fk-type-carousel .fk-open').click(); return 0",
                vec![],
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        for violation in accessibility_violations(&w).await {
            found.push(format!("lightbox at {width}px: {violation}"));
        }
        assert!(found.is_empty(), "{}", found.join("\n"));
        w.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_mail_the_banner_the_mailbox_and_its_settings_read_well_at_both_widths() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let mut found = Vec::new();
    for width in WIDTHS {
        let name = format!("mail_{width}");
        app.instagram_account(&name, AccountKind::Business, false);
        let mut w = Window::open(&driver, "mail", width).await;
        // The pages before logging in, for axe too.
        for page in ["/login", "/signup"] {
            w.go(app.url(page).as_str(), "logged-out").await;
            for violation in accessibility_violations(&w).await {
                found.push(format!("{page} at {width}px: {violation}"));
            }
        }
        let email = format!("mail{width}@example.com");
        w.sign_up(&app, &email).await;
        let owner = crate::dashboard::user_id(&app, &email).await;
        let c = crate::dashboard::connect_instagram(&app, owner, &name).await;
        app.sim
            .apply_event(&name, AccountEvent::PasswordChanged)
            .await
            .unwrap();
        app.advance(8 * 3600);
        feedkeeper::jobs::run_due_now(&app.state, "test")
            .await
            .unwrap();
        app.advance(61);
        feedkeeper::jobs::run_due_now(&app.state, "test")
            .await
            .unwrap();

        // The banner, on every page while the account needs reconnecting.
        for page in ["/widgets", "/account"] {
            w.go(app.url(page).as_str(), "banner").await;
            let banner = w
                .client
                .find(Locator::Css(".banner"))
                .await
                .unwrap_or_else(|_| panic!("no banner on {page} at {width}px"));
            assert!(banner.is_displayed().await.unwrap());
            assert!(
                banner
                    .text()
                    .await
                    .unwrap()
                    .contains("An Instagram account needs reconnecting"),
            );
        }
        // The menu stays on one line, its count included.
        let tops = w
            .client
            .execute(
                "return Array.from(document.querySelectorAll('.nav a'))\
                   .map(function(a){return Math.round(a.getBoundingClientRect().top)})",
                vec![],
            )
            .await
            .unwrap();
        let tops: Vec<i64> = serde_json::from_value(tops).unwrap();
        assert!(
            tops.windows(2).all(|p| p[0] == p[1]),
            "menu wraps at {width}px: {tops:?}"
        );
        w.click(".banner a", "banner-link").await;
        assert_eq!(w.path().await, "/connections");

        // The mailbox: the alert, kept (no server here), and the settings.
        w.click("nav a[href='/mail']", "mailbox").await;
        let text = w.text().await;
        assert!(text.contains("No mail server is configured"), "{text}");
        assert!(
            text.contains(&format!("@{name} needs reconnecting")),
            "{text}"
        );
        for violation in accessibility_violations(&w).await {
            found.push(format!("/mail at {width}px: {violation}"));
        }
        w.fill("#reminder_days", "1, soon").await;
        w.click_refused("form[action='/mail/settings'] button", "bad-days")
            .await;
        let alert = w
            .client
            .find(Locator::Css("[role=alert]"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            alert.contains("\"soon\" is not a number of days"),
            "{alert}"
        );
        w.fill("#reminder_days", "2, 4").await;
        w.click("form[action='/mail/settings'] button", "saved")
            .await;
        assert!(w.text().await.contains("Saved."));
        w.click("form[action='/mail/test'] button", "test-mail")
            .await;
        feedkeeper::jobs::run_due_now(&app.state, "test")
            .await
            .unwrap();
        w.go(app.url("/mail").as_str(), "with-test").await;
        assert!(w.text().await.contains("Test mail from feedkeeper"));

        // One message: the HTML in its sandboxed frame, and the text.
        w.click("a[href^='/mail/']:not([href='/mail/settings'])", "message")
            .await;
        let frame = w
            .client
            .find(Locator::Css("iframe.mail-frame"))
            .await
            .unwrap();
        assert!(frame.is_displayed().await.unwrap());
        for violation in accessibility_violations(&w).await {
            found.push(format!("a message at {width}px: {violation}"));
        }

        // The alert's reconnect page and its unsubscribe page, as the recipient sees them.
        let alert = feedkeeper::db::mail::list_owned_messages(&app.state.db, owner, None, 10)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.category == "alerts")
            .unwrap();
        let body = feedkeeper::mail::open_body(&app.state, &alert).unwrap();
        let base = app.state.config.public_url();
        let start = body.text.find(&format!("{base}/l/")).unwrap();
        let link: String = body.text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        let unsubscribe =
            feedkeeper::mail::unsubscribe::address(&app.state, owner, &email, "alerts");
        for (page, label) in [(link, "reconnect-page"), (unsubscribe, "unsubscribe")] {
            w.go(&page, label).await;
            for violation in accessibility_violations(&w).await {
                found.push(format!("{label} at {width}px: {violation}"));
            }
        }
        w.click("form[action^='/mail/unsubscribe/'] button", "unsubscribed")
            .await;
        assert!(w.text().await.contains("gets no more mail"));
        w.click("form[action$='/undo'] button", "resubscribed")
            .await;
        assert!(w.text().await.contains("gets these messages again"));

        // The connection's page: who is told, and the history.
        w.go(
            app.url(&format!("/connections/{}", c.id)).as_str(),
            "connection-mail",
        )
        .await;
        w.fill("#extra", "not an address").await;
        w.click("form[action$='/mail'] button", "bad-extra").await;
        assert!(w.text().await.contains("Not saved"));
        w.fill("#extra", "client@example.com").await;
        w.click("form[action$='/mail'] button", "extra-saved").await;
        assert!(w.text().await.contains("Saved who is told"));
        assert!(
            w.text()
                .await
                .contains(&format!("@{name} needs reconnecting"))
        );
        w.close().await;
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_webhooks_an_endpoint_is_added_tested_and_its_log_read_at_both_widths() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    // A receiver on this machine, so the operator allows loopback endpoints.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = received.clone();
    let app_router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app_router).await.unwrap() });
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private_addresses = true).await;
    let mut found = Vec::new();
    for width in WIDTHS {
        let mut w = Window::open(&driver, "webhooks", width).await;
        w.sign_up(&app, &format!("hooks{width}@example.com")).await;
        w.click("a[href='/account']", "account").await;
        w.click("main a[href='/webhooks']", "webhooks").await;
        for violation in accessibility_violations(&w).await {
            found.push(format!("/webhooks at {width}px: {violation}"));
        }
        w.fill("#url", "not a web address").await;
        // The browser's own check stops a malformed address; a private one reaches us.
        w.fill("#url", "http://192.168.1.10/hook").await;
        w.client
            .execute(
                "document.querySelector('input[name=\"connection.needs_reconnect\"]').click(); return 0",
                vec![],
            )
            .await
            .unwrap();
        w.click("form[action='/webhooks'] button", "added-private")
            .await;
        // Allowed here (the operator allows private addresses): it is added.
        assert!(w.text().await.contains("whsec_"), "the secret, once");
        w.go(app.url("/webhooks").as_str(), "list").await;
        w.fill("#url", &hook).await;
        w.click("form[action='/webhooks'] button", "added").await;
        let secret = w
            .client
            .find(Locator::Css("#webhook-secret"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(secret.starts_with("whsec_"), "{secret}");
        for violation in accessibility_violations(&w).await {
            found.push(format!("an endpoint at {width}px: {violation}"));
        }
        let before = received.load(std::sync::atomic::Ordering::SeqCst);
        w.click("form[action$='/test'] button", "test-sent").await;
        feedkeeper::jobs::run_due_now(&app.state, "test")
            .await
            .unwrap();
        assert_eq!(
            received.load(std::sync::atomic::Ordering::SeqCst),
            before + 1
        );
        let path = w.path().await;
        w.go(app.url(&path).as_str(), "delivered").await;
        let text = w.text().await;
        assert!(text.contains("Delivered"), "{text}");
        assert!(text.contains("HTTP 204"), "{text}");
        assert!(!text.contains("whsec_"), "the secret is not shown again");
        w.click("form[action$='/rotate'] button", "rotated").await;
        assert!(w.text().await.contains("also signs until"));
        w.click("form[action$='/toggle'] button", "off").await;
        assert!(w.text().await.contains("Turned off"));
        w.close().await;
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[tokio::test]
async fn browser_api_keys_are_made_shown_once_used_and_revoked_at_both_widths() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let mut found = Vec::new();
    for width in WIDTHS {
        let mut w = Window::open(&driver, "api-keys", width).await;
        w.sign_up(&app, &format!("api{width}@example.com")).await;
        w.click("a[href='/account']", "account").await;
        w.click("main a[href='/api']", "api").await;
        for violation in accessibility_violations(&w).await {
            found.push(format!("/api at {width}px: {violation}"));
        }
        // A name of spaces passes the browser's check and is refused by ours, input kept.
        w.fill("#key-name", "   ").await;
        w.click_refused("form[action='/api'] button", "refused")
            .await;
        assert!(w.text().await.contains("Give the key a name"));
        w.fill("#key-name", "Agency <reporting> script").await;
        w.click("form[action='/api'] button", "created").await;
        let key = w
            .client
            .find(Locator::Css("#api-key"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(key.starts_with("fk_"), "{key}");
        assert!(w.text().await.contains("Agency <reporting> script"));
        for violation in accessibility_violations(&w).await {
            found.push(format!("a new key at {width}px: {violation}"));
        }
        // The key works for programs.
        let answer = reqwest::Client::new()
            .get(app.url("/api/v1/widgets"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), reqwest::StatusCode::OK);
        // Shown once: a reload shows only its prefix.
        w.go(app.url("/api").as_str(), "reloaded").await;
        let text = w.text().await;
        assert!(!text.contains(&key), "the key is shown once");
        assert!(text.contains(&key[..15]), "{text}");
        w.click("form[action$='/revoke'] button", "revoked").await;
        assert!(w.text().await.contains("Revoked on"));
        let refused = reqwest::Client::new()
            .get(app.url("/api/v1/widgets"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
        w.close().await;
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// At exactly the breakpoints (phones below 600 px, tablets below 960 px), the widget shows the
/// columns set for that size, and the space the embed code reserves is the space it takes.
#[tokio::test]
async fn browser_the_breakpoints_hold_at_exactly_600_and_960_px() {
    use feedkeeper::widgets::settings::{Captions, WidgetSettings};
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    app.instagram_account("corner_shop", AccountKind::Business, false);
    for i in 0..10 {
        app.sim
            .post_media(
                "corner_shop",
                meta_sim::NewMedia {
                    caption: Some(format!("Shelf {i}")),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    let session = app.signup_and_login("edges@example.com").await;
    let owner = crate::dashboard::user_id(&app, "edges@example.com").await;
    let c = crate::dashboard::connect_instagram(&app, owner, "corner_shop").await;
    let settings = WidgetSettings {
        columns_desktop: 4,
        columns_tablet: 3,
        columns_mobile: 2,
        posts: 12,
        captions: Captions::Hover,
        ..WidgetSettings::default()
    };
    let made = feedkeeper::widgets::create(&app.state, owner, "edges", c.id, &settings)
        .await
        .unwrap();
    feedkeeper::jobs::run_due_now(&app.state, "test")
        .await
        .unwrap();
    // The embed code as the dashboard gives it, with the height it reserves.
    let page = session.get(&format!("/widgets/{}", made.id)).await.body;
    let at = page.find("<textarea id=\"embed-code\"").unwrap();
    let start = at + page[at..].find('>').unwrap() + 1;
    let end = start + page[start..].find("</textarea>").unwrap();
    let code = page[start..end]
        .replace("&#34;", "\"")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&");
    assert!(code.contains("padding-top:min("), "{code}");
    let (site, server) = customer_site(code).await;
    for (width, columns) in [(599, 2), (600, 3), (959, 3), (960, 4)] {
        let mut w = Window::open(&driver, "breakpoints", width).await;
        w.go(&site, &format!("at-{width}")).await;
        let viewport = w
            .client
            .execute("return window.innerWidth", vec![])
            .await
            .unwrap();
        assert_eq!(
            viewport, width,
            "the window is {viewport} px wide, not {width}"
        );
        // The frame took its height, and the first row's pictures loaded.
        wait_framed(&w).await;
        let loaded = "return Array.from(document.querySelectorAll('.fk-post img:not([loading=lazy])'))\
            .every(function(i){return i.complete})";
        assert_eq!(frame_until(&w, loaded, true.into()).await, true);
        let shown = in_frame(
            &w,
            "var tops=Array.from(document.querySelectorAll('.fk-post')).map(function(p){\
               return Math.round(p.getBoundingClientRect().top)});\
             return [window.innerWidth, tops.filter(function(t){return t===tops[0]}).length]",
        )
        .await;
        assert_eq!(
            shown,
            serde_json::json!([width, columns]),
            "at {width} px: [frame width, columns in the first row]"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let cls = w.client.execute("return window.cls", vec![]).await.unwrap();
        let shifts = w
            .client
            .execute("return window.shifts", vec![])
            .await
            .unwrap();
        assert_eq!(cls, 0.0, "at {width} px: layout shift {cls}: {shifts}");
        w.close().await;
    }
    server.abort();
}
