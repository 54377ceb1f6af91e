//! Where a webhook may point: `http(s)` URLs only, and for a `client` user's webhook no loopback,
//! private, link-local or unique-local address (IPv4 and IPv6, `localhost`, `0.0.0.0`,
//! IPv4-mapped IPv6) unless the operator sets `WEBHOOK_ALLOW_PRIVATE=true`. Checked when the
//! webhook is created and again at each delivery (DNS can change): the delivery client resolves
//! names through [`PublicOnlyResolver`], so the address it connects to is the one checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A name that does not resolve within this long is refused.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "{host} is a loopback, private, link-local or unique-local address ({addr}): a client's webhook must \
         point at a public address (the operator may allow private ones with WEBHOOK_ALLOW_PRIVATE=true)"
    )]
    Private { host: String, addr: String },
    #[error("{host} does not resolve: {cause}")]
    Unresolvable { host: String, cause: String },
}

/// Parses a webhook URL: absolute, `http` or `https`, with a host, at most 2000 characters.
pub fn parse_url(raw: &str) -> Result<Url, TargetError> {
    let raw = raw.trim();
    if raw.len() > 2_000 {
        return Err(TargetError::Invalid("the url is longer than 2000 characters".into()));
    }
    let url =
        Url::parse(raw).map_err(|e| TargetError::Invalid(format!("the url {raw:?} does not parse: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TargetError::Invalid(format!(
            "the url's scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(TargetError::Invalid("the url has no host".into()));
    }
    Ok(url)
}

/// Loopback, private (RFC 1918), carrier-grade NAT, link-local, unspecified, broadcast or
/// "this network" IPv4; loopback, unspecified, unique-local, link-local or site-local IPv6;
/// IPv4-mapped IPv6 by its IPv4 address.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_private_v4(v4),
            None => is_private_v6(v6),
        },
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
}

/// Refuses `url` when its host is, or resolves to, a private address.
pub async fn ensure_public(url: &Url) -> Result<(), TargetError> {
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    // The URL parser normalises IP literals (`0x7f.1` is `127.0.0.1`, IPv6 comes in brackets).
    let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>();
    let addrs = match literal {
        Ok(ip) => vec![ip],
        Err(_) => resolve_public(&host, port).await?.into_iter().map(|a| a.ip()).collect(),
    };
    match addrs.into_iter().find(|ip| is_private(*ip)) {
        Some(ip) => Err(TargetError::Private { host, addr: ip.to_string() }),
        None => Ok(()),
    }
}

/// Resolves `host`, refusing `localhost` names and any private answer.
async fn resolve_public(host: &str, port: u16) -> Result<Vec<SocketAddr>, TargetError> {
    let lower = host.trim_end_matches('.').to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return Err(TargetError::Private { host: host.to_owned(), addr: "localhost".into() });
    }
    let unresolvable = |cause: String| TargetError::Unresolvable { host: host.to_owned(), cause };
    let addrs: Vec<SocketAddr> = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| unresolvable(format!("no answer within {} s", RESOLVE_TIMEOUT.as_secs())))?
        .map_err(|e| unresolvable(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(unresolvable("no address".into()));
    }
    if let Some(private) = addrs.iter().find(|a| is_private(a.ip())) {
        return Err(TargetError::Private { host: host.to_owned(), addr: private.ip().to_string() });
    }
    Ok(addrs)
}

/// The delivery client's resolver for clients' webhooks: the addresses it connects to are the
/// ones checked, so a name that starts resolving to a private address is refused at delivery.
#[derive(Debug, Default)]
pub struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let addrs = resolve_public(name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_of_both_families_are_recognised() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private} is private");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8", "172.32.0.1"] {
            assert!(!is_private(public.parse().unwrap()), "{public} is public");
        }
    }

    #[test]
    fn only_absolute_http_urls_are_accepted() {
        assert!(parse_url("https://crm.example.com/hooks?x=1").is_ok());
        for bad in ["ftp://x.example/", "javascript:alert(1)", "not a url", "http://", "/relative"] {
            assert!(matches!(parse_url(bad), Err(TargetError::Invalid(_))), "{bad}");
        }
    }

    #[tokio::test]
    async fn localhost_names_and_private_literals_are_refused() {
        for url in [
            "http://localhost:8080/x",
            "http://api.localhost/",
            "http://127.0.0.1/",
            "http://[::1]/",
            "http://[::ffff:192.168.0.1]/",
            "http://0.0.0.0/",
        ] {
            let err = ensure_public(&parse_url(url).unwrap()).await.unwrap_err();
            assert!(matches!(err, TargetError::Private { .. }), "{url}: {err}");
        }
        assert!(ensure_public(&parse_url("http://93.184.215.14/").unwrap()).await.is_ok());
    }
}
