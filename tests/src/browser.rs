//! A headless chromium driven through WebDriver (Debian's chromedriver, fantoccini), and
//! `rdc console` as a process: shared by the console's end-to-end test and its benchmark.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};

/// A running `rdc console`, and the sign-in link it printed.
#[allow(missing_debug_implementations)]
pub struct ConsoleProcess {
    child: Child,
    pub url: String,
    pub port: u16,
}

impl ConsoleProcess {
    /// `rdc` (the binary at `rdc`) `console` for the units in `units`, decrypting with
    /// `identity`, its jobs, previews and audit anchors in `state`, exports in `exports`.
    pub fn start(
        rdc: &Path,
        units: &Path,
        identity: &Path,
        state: &Path,
        exports: &Path,
    ) -> ConsoleProcess {
        let mut child = Command::new(rdc)
            .arg("console")
            .arg("--units")
            .arg(units)
            .arg("--identity")
            .arg(identity)
            .arg("--state")
            .arg(state)
            .arg("--exports")
            .arg(exports)
            // Its own audit anchors (`rdc audit`'s, kept beside the console's state).
            .env("XDG_STATE_HOME", state)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("rdc console starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("rdc console prints its link");
        let url = line
            .trim()
            .strip_prefix("rdc console: open ")
            .unwrap_or_else(|| panic!("rdc console printed {line:?}"))
            .to_owned();
        let port = url
            .split(':')
            .nth(2)
            .and_then(|p| p.split('/').next())
            .and_then(|p| p.parse().ok())
            .expect("a port in the link");
        ConsoleProcess { child, url, port }
    }

    /// The one-time token of the sign-in link.
    pub fn token(&self) -> &str {
        self.url.rsplit('=').next().unwrap_or_default()
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn at(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for ConsoleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver on a free port, and a headless chromium session through it.
#[allow(missing_debug_implementations)]
pub struct Browser {
    driver: Child,
    pub client: Client,
}

impl Browser {
    /// A session; `eager`: navigation returns when the page's HTML is parsed, without waiting
    /// for its pictures.
    pub async fn start(eager: bool) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (apt install chromium-driver; scripts/install-deps.sh does)");
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1400"]
            }),
        );
        if eager {
            caps.insert("pageLoadStrategy".into(), "eager".into());
        }
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a chromium session");
        Browser { driver, client }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
