//! `cofre serve` in a real browser (Debian's Chromium over WebDriver): log in, browse by set
//! and date to a file two snapshots back, see its versions, download it and its folder, and
//! compare the bytes with what the source held then. axe-core checks every page visited.
//! Screenshots of the overview and the file page go to $COFRE_SCREENSHOTS (docs/img when
//! refreshing the README's), else to the test's scratch directory.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use common::browser::Browser;
use common::web::{add_user, Server};
use common::Env;

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

#[test]
fn a_browser_finds_an_old_version_downloads_it_and_its_folder_and_pages_pass_axe() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    let app = src.join("app");
    std::fs::create_dir_all(app.join("uploads")).expect("mkdir");
    std::fs::write(app.join("uploads/report.pdf"), common::noise(300_000, 4)).expect("write");
    std::fs::write(app.join("README"), b"the app\n").expect("write");
    std::fs::write(
        env.path("cofre.toml"),
        format!(
            "[sets.files]\npaths = [{:?}]\nevery = \"4h\"\nkeep = {{ within = \"30d\" }}\n",
            src.display()
        ),
    )
    .expect("config");
    // Four snapshots, a day apart, the last an hour ago; settings.json changes in each.
    let now = time::OffsetDateTime::now_utc()
        .replace_second(0)
        .expect("second");
    let times: Vec<_> = [73, 49, 25, 1]
        .iter()
        .map(|h| now - time::Duration::hours(*h))
        .collect();
    let mut settings = Vec::new();
    let mut app_files: Vec<BTreeMap<String, Vec<u8>>> = Vec::new();
    for (i, t) in times.iter().enumerate() {
        let body = format!("{{\"version\": {i}, \"feature\": {}}}\n", i % 2 == 0);
        std::fs::write(app.join("settings.json"), &body).expect("write");
        // Uploads grow, so the overview's plot has something to show.
        let upload = common::noise(150_000 * (i + 1), i as u64);
        std::fs::write(app.join(format!("uploads/u{i}.bin")), upload).expect("write");
        settings.push(body.into_bytes());
        let files = common::walk(&app)
            .into_iter()
            .filter(|p| p.is_file())
            .map(|p| {
                let rel = p.strip_prefix(&app).expect("prefix").display().to_string();
                (rel, std::fs::read(&p).expect("read"))
            })
            .collect();
        app_files.push(files);
        let cfg = env.path("cofre.toml");
        env.ok(&[
            "--config",
            cfg.to_str().expect("utf-8"),
            "ingest",
            src.to_str().expect("utf-8"),
            "--set",
            "files",
            "--tag",
            "4h",
            "--time",
            &rfc3339(*t),
        ]);
    }
    add_user(&env, "dev", "viewer", "a long passphrase");
    let server = Server::start(&env, &[]);
    let browser = Browser::start(&env.path("downloads"));
    let shots = std::env::var_os("COFRE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| env.path("screenshots"));
    std::fs::create_dir_all(&shots).expect("screenshots dir");
    let mut violations = Vec::new();
    let mut check = |b: &Browser, page: &str| {
        for v in b.serious_violations() {
            violations.push(format!("{page}: {v}"));
        }
    };

    browser.goto(&format!("{}/", server.url));
    assert!(browser.url().ends_with("/login"), "sent to the login page");
    check(&browser, "login");
    browser.type_into("#user", "dev");
    browser.type_into("#password", "a long passphrase");
    browser.click("form.login button");
    let home = browser.wait_text("Set files");
    assert!(home.contains("green: last backup 1 h ago"), "{home}");
    check(&browser, "overview");
    browser.screenshot(&shots.join("serve-overview.png"));

    // Two snapshots back from the latest: set → year → month → day → time → path.
    let t = times[1];
    browser.click_link("Browse");
    check(&browser, "browse");
    browser.click_link("files/");
    browser.click_link(&format!("{}/", t.year()));
    browser.click_link(&format!("{:02}/", t.month() as u8));
    browser.click_link(&format!("{:02}/", t.day()));
    check(&browser, "layout");
    browser.click_link(&format!("{:02}{:02}/", t.hour(), t.minute()));
    for part in app.iter().skip(1) {
        browser.click_link(&format!("{}/", part.to_str().expect("utf-8")));
    }
    check(&browser, "directory");
    browser.click_link("settings.json");
    let page = browser.wait_text("Versions");
    let hash = blake3::hash(&settings[1]).to_hex().to_string();
    assert!(
        page.contains(&hash),
        "the file page shows this version's blake3: {page}"
    );
    assert_eq!(page.matches("changed").count(), 3, "four versions: {page}");
    check(&browser, "file");
    browser.screenshot(&shots.join("serve-file-versions.png"));
    // On a phone's width the page does not scroll sideways (wide tables scroll in place).
    browser.window(390, 844);
    let overflow = browser.script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
    );
    assert!(
        overflow.as_i64().is_some_and(|o| o <= 0),
        "the file page is wider than a phone: {overflow}"
    );
    check(&browser, "file on a phone");
    browser.window(1200, 900);
    browser.click_link("Download");
    let got = std::fs::read(browser.downloaded("settings.json")).expect("read");
    assert_eq!(
        got, settings[1],
        "the download is the version two snapshots back"
    );

    // This version against the one before it, from its row of the versions table.
    browser.click("tr[aria-current] a[href^='/diff/file']");
    let diff = browser.wait_text("Compare versions");
    assert!(
        diff.contains("-{\"version\": 0") && diff.contains("+{\"version\": 1"),
        "{diff}"
    );
    check(&browser, "diff");

    // Its folder, as a tar, compared file by file with what the folder held then.
    browser.script("history.back();");
    browser.click_link("app");
    browser.click_link("Download as .tar");
    let tar = browser.downloaded("app.tar");
    let out = env.path("untar");
    std::fs::create_dir_all(&out).expect("mkdir");
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&out)
        .status()
        .expect("tar");
    assert!(st.success());
    let unpacked: BTreeMap<String, Vec<u8>> = common::walk(&out.join("app"))
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let rel = p
                .strip_prefix(out.join("app"))
                .expect("prefix")
                .display()
                .to_string();
            (rel, std::fs::read(&p).expect("read"))
        })
        .collect();
    assert!(
        unpacked == app_files[1],
        "the folder download differs from the snapshot: {:?}",
        unpacked.keys()
    );

    // Search and compare pages.
    browser.goto(&format!("{}/search?q=*.json", server.url));
    assert!(browser.text().contains("settings.json"));
    check(&browser, "search");
    browser.goto(&format!("{}/diff", server.url));
    browser.click("form.diff button");
    browser.wait_text("changed (");
    check(&browser, "compare");

    assert!(violations.is_empty(), "axe-core: {violations:#?}");
}
