//! The command line Chromium is launched with: an explicit flag list, each flag for a reason, and
//! the desktop user agent.

use std::path::Path;

use super::process;

/// A desktop Chrome user agent: WhatsApp (and the simulator) refuse `HeadlessChrome`.
pub const DESKTOP_USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
/// Whether `executable` is Debian's `chromium-headless-shell` (by its file name): headless by
/// construction, so it takes no `--headless` flag.
pub fn is_headless_shell(executable: &Path) -> bool {
    executable.file_name().is_some_and(|n| n.to_string_lossy().contains("headless-shell"))
}

/// The flags we launch the browser with, each for a reason (measured in docs/chromium.md).
/// chromiumoxide's defaults are not used (we spawn the process ourselves), so
/// `--enable-automation` is never passed.
pub fn chromium_args(executable: &Path, profile: &Path, as_root: bool) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    if !is_headless_shell(executable) {
        // Full Chromium: no display on servers; the new headless mode is the browser without a window.
        args.push("--headless=new".into());
    }
    args.extend(
        [
            // DevTools on fds 3/4, never on a port other local users could reach (devtools_pipe.rs).
            "--remote-debugging-pipe",
            // No GPU on servers; /dev/shm is tiny in containers.
            "--disable-gpu",
            "--disable-dev-shm-usage",
            // The network is closed or metered: no first-run UI, updates, sync, phishing lists, crash uploads.
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-breakpad",
            "--disable-client-side-phishing-detection",
            "--metrics-recording-only",
            "--password-store=basic",
            "--use-mock-keychain",
            // No spare renderer kept warm: one tab needs one renderer (less memory and start-up CPU).
            "--disable-features=Translate,MediaRouter,OptimizationHints,SpareRendererForSitePerProcess",
            // Fewer processes, less memory: the network service and the (software) GPU compositor
            // run as threads of the browser process, and one renderer serves every page.
            "--enable-features=NetworkServiceInProcess2",
            "--in-process-gpu",
            "--renderer-process-limit=1",
            // WhatsApp's timers (QR rotation, keep-alives) must run although nobody looks at the page.
            "--disable-background-timer-throttling",
            "--disable-backgrounding-occluded-windows",
            "--disable-renderer-backgrounding",
            "--mute-audio",
            "--hide-scrollbars",
            // English UI and messages (we read stderr).
            "--lang=en-US",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|s| (*s).to_owned()),
    );
    args.push(format!("--user-agent={DESKTOP_USER_AGENT}"));
    // The persistent profile: the WhatsApp login survives restarts.
    args.push(process::profile_arg(profile));
    if as_root {
        // Chromium refuses to run as root with its sandbox; only then do we drop it, and without a
        // sandbox the zygote (a pre-forked template for sandboxed children) has no purpose.
        args.push("--no-sandbox".into());
        args.push("--no-zygote".into());
    } else {
        // Sandboxed: Chromium refuses --no-zygote. The renderers' zygote stays; the unsandboxed
        // one (for GPU and utility processes, which now run in the browser) is not started.
        args.push("--no-unsandboxed-zygote".into());
    }
    args.push("about:blank".into());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROMIUM: &str = "/usr/bin/chromium";
    const SHELL: &str = "/usr/lib/chromium/chromium-headless-shell";

    fn has(args: &[String], flag: &str) -> bool {
        args.iter().any(|a| a == flag)
    }

    #[test]
    fn flags_are_explicit_and_never_enable_automation() {
        for exe in [CHROMIUM, SHELL] {
            let args = chromium_args(Path::new(exe), Path::new("/data/sessions/admin"), false);
            assert!(has(&args, "--user-data-dir=/data/sessions/admin"));
            assert!(!args.iter().any(|a| a.contains("enable-automation")));
            assert!(!has(&args, "--no-sandbox"));
            // DevTools over fds 3/4 only: no port another local user could connect to.
            assert!(has(&args, "--remote-debugging-pipe"));
            assert!(!args.iter().any(|a| a.starts_with("--remote-debugging-port")));
            // Either browser: the desktop user agent (WhatsApp refuses HeadlessChrome).
            assert!(args.iter().any(|a| a.starts_with("--user-agent=") && !a.contains("Headless")));
            assert!(has(&chromium_args(Path::new(exe), Path::new("/p"), true), "--no-sandbox"));
        }
    }

    #[test]
    fn only_full_chromium_is_told_to_be_headless() {
        let chromium = chromium_args(Path::new(CHROMIUM), Path::new("/p"), false);
        assert!(has(&chromium, "--headless=new"));
        let shell = chromium_args(Path::new(SHELL), Path::new("/p"), false);
        assert!(!shell.iter().any(|a| a.starts_with("--headless")), "{shell:?}");
        assert!(is_headless_shell(Path::new("/usr/bin/chromium-headless-shell")));
        assert!(!is_headless_shell(Path::new("/usr/bin/chromium")));
    }

    #[test]
    fn the_zygote_goes_only_with_the_sandbox() {
        // Chromium refuses --no-zygote while sandboxed ("Use --no-zygote together with --no-sandbox").
        let sandboxed = chromium_args(Path::new(SHELL), Path::new("/p"), false);
        assert!(!has(&sandboxed, "--no-zygote") && has(&sandboxed, "--no-unsandboxed-zygote"));
        let root = chromium_args(Path::new(SHELL), Path::new("/p"), true);
        assert!(has(&root, "--no-zygote") && has(&root, "--no-sandbox"));
        assert!(!root.iter().any(|a| a == "--single-process"));
    }
}
