//! What a `/pve` or `/probe` target may be, and where a module's credentials may go.
//!
//! A target is a host (`pve1`, `pve1:8006`, `[fd00::1]:8006`, `fd00::1`, `https://pve1:8006/`)
//! or several nodes of one cluster, comma separated. Anything else is refused before a
//! connection is made: another scheme than `https` (the credentials would travel in plain text;
//! a module says `scheme: http` itself where an operator wants that), user info, a path, a
//! query, a fragment, percent-encoding (and so IPv6 zones), or text that is no host.
//!
//! A module may list the targets it may be used with ([`AllowList`]): exact hosts (`pve1`,
//! `pve1.example.com:8006`, `192.0.2.10`), name patterns (`*.example.com`: any name below
//! `example.com`) and CIDR ranges for IP targets (`10.0.0.0/8`, `fd00::/8`). Names are never
//! resolved: a range matches targets written as addresses only. Hosts are compared as the URL
//! parser normalises them (lower case, IDNA, `127.1` as `127.0.0.1`), which is also what is
//! connected to.

use std::net::IpAddr;

/// One host of a target, as it will be connected to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// The normalised name or address (an IPv6 address without brackets).
    pub name: String,
    pub ip: Option<IpAddr>,
    pub port: u16,
}

impl Host {
    /// `name:port`, with brackets around an IPv6 address: the authority of its URL.
    pub fn authority(&self) -> String {
        match self.ip {
            Some(IpAddr::V6(v6)) => format!("[{v6}]:{}", self.port),
            _ => format!("{}:{}", self.name, self.port),
        }
    }

    /// A loopback address, or `localhost`: credentials sent there stay on the machine.
    pub fn is_loopback(&self) -> bool {
        on_this_machine(&self.name)
    }
}

/// Whether a host name or address (IPv6 with or without brackets) is a loopback address or
/// `localhost`: what is sent there stays on the machine.
pub fn on_this_machine(host: &str) -> bool {
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost",
    }
}

/// The hosts of `target`; `default_port` where one names none. The error says what is wrong.
pub fn parse(target: &str, default_port: u16) -> Result<Vec<Host>, String> {
    let mut hosts = Vec::new();
    for item in target.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        hosts.push(parse_host(item, Some(default_port))?);
    }
    if hosts.is_empty() {
        return Err("no host given".into());
    }
    Ok(hosts)
}

/// One host; without a port in the text, `default_port` (or 0 for "any", in allow-lists).
fn parse_host(item: &str, default_port: Option<u16>) -> Result<Host, String> {
    let authority = match item.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => {
            rest.strip_suffix('/').unwrap_or(rest)
        }
        Some((scheme, _)) => {
            return Err(format!(
                "scheme `{scheme}` refused: credentials go to targets over HTTPS only (give \
                 the host, or https://host:port)"
            ));
        }
        None => item,
    };
    if authority.is_empty() {
        return Err("no host given".into());
    }
    let refuse = |what: &str| Err(format!("{what} is not allowed in a target"));
    if authority.contains('@') {
        return refuse("user info (`user@`)");
    }
    if authority.contains(['/', '\\']) {
        return refuse("a path");
    }
    if authority.contains('?') {
        return refuse("a query");
    }
    if authority.contains('#') {
        return refuse("a fragment");
    }
    if authority.contains('%') {
        return refuse("percent-encoding (or an IPv6 zone)");
    }
    if authority
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("a host has no white space".into());
    }
    // A bare IPv6 address, `fd00::1`: bracketed for the URL.
    let bracketed;
    let authority = if authority.matches(':').count() > 1 && !authority.starts_with('[') {
        let v6: std::net::Ipv6Addr = authority
            .parse()
            .map_err(|_| format!("`{authority}` is not an IPv6 address (write [address]:port)"))?;
        bracketed = format!("[{v6}]");
        bracketed.as_str()
    } else {
        authority
    };
    let url = reqwest::Url::parse(&format!("https://{authority}/"))
        .map_err(|e| format!("not a host: {e}"))?;
    // The checks above keep all of these away; the parser has the last word.
    if !url.username().is_empty()
        || url.password().is_some()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err("only a host and a port are allowed in a target".into());
    }
    let (name, ip) = match url.host() {
        Some(url::Host::Domain(name)) => (name.to_owned(), None),
        Some(url::Host::Ipv4(v4)) => (v4.to_string(), Some(IpAddr::V4(v4))),
        Some(url::Host::Ipv6(v6)) => (v6.to_string(), Some(IpAddr::V6(v6))),
        None => return Err("no host given".into()),
    };
    // The parser hides an explicit `:443` (HTTPS' default): whether a port was written is read
    // from the text. `https://host` without one gets the module's port, not 443.
    let written = authority.rsplit_once(':').is_some_and(|(host, port)| {
        !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && (!host.contains(':') || host.ends_with(']'))
    });
    let port = match (url.port_or_known_default(), written, default_port) {
        (Some(0), true, _) => return Err("port 0 is not a port".into()),
        (Some(port), true, _) => port,
        (_, _, Some(port)) => port,
        (_, _, None) => 0,
    };
    Ok(Host { name, ip, port })
}

/// One entry of an allow-list.
#[derive(Clone, Debug, PartialEq)]
enum Allowed {
    /// This host; on this port only when one was given.
    Exact { name: String, port: Option<u16> },
    /// Any name below this domain (`*.example.com`).
    Below(String),
    /// Any address in this range.
    Range(ipnet::IpNet),
}

/// The targets a module may be used with.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AllowList(Vec<Allowed>);

impl AllowList {
    /// Entries as written in `allowed_targets` or `--allowed-targets`; the error names the
    /// entry at fault.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<AllowList, String> {
        let mut list = Vec::new();
        for entry in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
            let bad = |e: String| format!("`{entry}`: {e}");
            let allowed = if let Some(domain) = entry.strip_prefix("*.") {
                let host = parse_host(domain, None).map_err(bad)?;
                if host.ip.is_some() || host.port != 0 || host.name.is_empty() {
                    return Err(bad("a pattern is `*.` and a domain name".into()));
                }
                Allowed::Below(host.name)
            } else if entry.contains('/') {
                let range: ipnet::IpNet = entry
                    .parse()
                    .map_err(|_| bad("not an address range such as 10.0.0.0/8".into()))?;
                Allowed::Range(range.trunc())
            } else if entry.contains('*') {
                return Err(bad("a pattern is `*.` followed by a domain name".into()));
            } else {
                let host = parse_host(entry, None).map_err(bad)?;
                Allowed::Exact {
                    name: host.name,
                    port: (host.port != 0).then_some(host.port),
                }
            };
            list.push(allowed);
        }
        if list.is_empty() {
            return Err("the list of allowed targets is empty".into());
        }
        Ok(AllowList(list))
    }

    /// Whether `host` is on the list.
    pub fn allows(&self, host: &Host) -> bool {
        self.0.iter().any(|allowed| match allowed {
            Allowed::Exact { name, port } => {
                *name == host.name && port.is_none_or(|p| p == host.port)
            }
            Allowed::Below(domain) => {
                host.ip.is_none()
                    && host
                        .name
                        .strip_suffix(domain.as_str())
                        .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.'))
            }
            Allowed::Range(range) => host.ip.is_some_and(|ip| range.contains(&ip)),
        })
    }

    /// Whether every host the list allows is on this machine (loopback).
    pub fn only_loopback(&self) -> bool {
        self.0.iter().all(|allowed| match allowed {
            Allowed::Exact { name, .. } => on_this_machine(name),
            Allowed::Below(domain) => domain == "localhost",
            Allowed::Range(range) => {
                range.network().is_loopback() && range.broadcast().is_loopback()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(target: &str) -> Result<Host, String> {
        let mut hosts = parse(target, 8006)?;
        assert_eq!(hosts.len(), 1);
        Ok(hosts.remove(0))
    }

    #[test]
    fn hosts_in_every_accepted_form() {
        assert_eq!(host("pve1").unwrap().authority(), "pve1:8006");
        assert_eq!(host("PVE1:8007").unwrap().authority(), "pve1:8007");
        assert_eq!(host("https://pve1:8006/").unwrap().authority(), "pve1:8006");
        assert_eq!(host("https://pve1").unwrap().authority(), "pve1:8006");
        assert_eq!(
            host("[fd00::1]:8006").unwrap().authority(),
            "[fd00::1]:8006"
        );
        assert_eq!(host("fd00::1").unwrap().authority(), "[fd00::1]:8006");
        assert_eq!(host("127.1").unwrap().authority(), "127.0.0.1:8006");
        assert_eq!(host("pve1:443").unwrap().authority(), "pve1:443");
        assert_eq!(host("https://[::1]:443").unwrap().authority(), "[::1]:443");
        assert_eq!(parse("pve1, pve2:8007,", 8006).unwrap().len(), 2);
    }

    #[test]
    fn everything_but_a_host_is_refused_with_what_is_wrong() {
        for (target, says) in [
            ("http://pve1:8006", "HTTPS only"),
            ("ftp://pve1", "HTTPS only"),
            ("user:pass@pve1", "user info"),
            ("https://user@pve1/", "user info"),
            ("pve1/api2/json", "a path"),
            ("pve1:8006/../x", "a path"),
            ("pve1?x=1", "a query"),
            ("pve1#x", "a fragment"),
            ("pve%31", "percent-encoding"),
            ("fe80::1%eth0", "percent-encoding"),
            ("pve1:65536", "not a host"),
            ("pve1:0", "port 0"),
            ("pve 1", "white space"),
            ("", "no host"),
            (" , ", "no host"),
            ("fd00::zz", "not an IPv6 address"),
        ] {
            let error = parse(target, 8006).unwrap_err();
            assert!(error.contains(says), "{target}: {error}");
        }
    }

    #[test]
    fn allow_lists_match_names_patterns_and_ranges() {
        let list = AllowList::parse([
            "pve1",
            "pve2.example.org:8007",
            "*.lab.example.com",
            "10.1.0.0/16",
            "fd00::/8",
        ])
        .unwrap();
        let allowed = |t: &str| list.allows(&host(t).unwrap());
        assert!(allowed("pve1") && allowed("PVE1:9000"));
        assert!(allowed("pve2.example.org:8007") && !allowed("pve2.example.org"));
        assert!(allowed("a.lab.example.com") && allowed("b.a.lab.example.com"));
        assert!(!allowed("lab.example.com") && !allowed("xlab.example.com"));
        assert!(!allowed("lab.example.com.evil.net"));
        assert!(allowed("10.1.2.3") && !allowed("10.2.0.1"));
        assert!(allowed("[fd00::1]:8006") && !allowed("fe80::1"));
        // Names are not resolved: a range allows addresses only.
        assert!(!allowed("localhost"));
    }

    #[test]
    fn bad_allow_list_entries_are_named() {
        for entry in ["*", "*.", "a*.b", "10.0.0.0/33", "http://pve1", "pve1/x"] {
            let error = AllowList::parse([entry]).unwrap_err();
            assert!(error.contains(entry), "{entry}: {error}");
        }
        assert!(AllowList::parse([" "]).is_err());
    }

    #[test]
    fn loopback_only_lists() {
        assert!(
            AllowList::parse(["127.0.0.0/8", "localhost", "::1"])
                .unwrap()
                .only_loopback()
        );
        assert!(
            !AllowList::parse(["127.0.0.1", "pve1"])
                .unwrap()
                .only_loopback()
        );
        assert!(host("127.0.0.5").unwrap().is_loopback());
        assert!(!host("pve1").unwrap().is_loopback());
    }
}
