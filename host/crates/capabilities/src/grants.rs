//! What one workflow step is allowed to reach, resolved from its `grants`
//! block once when the workflow is loaded and checked on every call.

use std::collections::BTreeSet;
use std::net::IpAddr;

use url::Url;

use weft_workflow::{GrantSpec, Grants};

/// The resolved grants of one step. Absent means "not granted at all".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepGrants {
    /// Hosts the `http` capability may reach.
    pub http: Option<Allow<HostPattern>>,
    /// Models the `llm` capability may ask for.
    pub llm: Option<Allow<String>>,
    /// Recipients the `email` capability may write to.
    pub email: Option<Allow<AddressPattern>>,
    /// Secrets the host may use on the step's behalf.
    pub secrets: BTreeSet<String>,
}

/// Everything, or only the listed entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow<T> {
    /// `true` in the workflow file.
    All,
    /// A list in the workflow file.
    Only(Vec<T>),
}

impl StepGrants {
    /// Resolves a step's `grants` block, or says which entry is malformed.
    ///
    /// # Errors
    ///
    /// A message naming the grant and the entry that cannot be understood.
    pub fn from_grants(grants: &Grants) -> Result<Self, String> {
        let mut resolved = StepGrants::default();
        if let Some(spec) = grants.get("http") {
            resolved.http = Some(allow(spec, HostPattern::parse)?);
        }
        if let Some(spec) = grants.get("llm") {
            resolved.llm = Some(allow(spec, |entry| Ok(entry.to_string()))?);
        }
        if let Some(spec) = grants.get("email") {
            resolved.email = Some(allow(spec, AddressPattern::parse)?);
        }
        if let Some(spec) = grants.get("secrets") {
            match spec {
                GrantSpec::All => {
                    return Err("grant `secrets` must list the secrets by name (`secrets: [WEBHOOK_SIGNING_KEY]`); \
                                `true` would hand every secret of the host to the step"
                        .to_string());
                }
                GrantSpec::List(names) => resolved.secrets = names.iter().cloned().collect(),
            }
        }
        Ok(resolved)
    }

    /// Whether `url` (scheme, host and port) is an allowed destination.
    pub fn allows_url(&self, url: &Url) -> bool {
        match &self.http {
            None => false,
            Some(Allow::All) => true,
            Some(Allow::Only(patterns)) => patterns.iter().any(|p| p.matches(url)),
        }
    }

    /// Whether an entry of the `http` grant names `url`'s host itself (not
    /// through `true` or a `*.` wildcard) and allows its scheme and port:
    /// what reaching a private or loopback address, or sending a secret
    /// header, requires.
    pub fn names_url(&self, url: &Url) -> bool {
        match &self.http {
            Some(Allow::Only(patterns)) => patterns.iter().any(|p| p.names_host() && p.matches(url)),
            _ => false,
        }
    }
}

fn allow<T>(spec: &GrantSpec, parse: impl Fn(&str) -> Result<T, String>) -> Result<Allow<T>, String> {
    match spec {
        GrantSpec::All => Ok(Allow::All),
        GrantSpec::List(entries) => entries.iter().map(|e| parse(e)).collect::<Result<_, _>>().map(Allow::Only),
    }
}

/// An allowed HTTP destination: `api.example.com`, `*.example.com`,
/// `127.0.0.1:8080` or `https://hooks.example.com:8443`. Without a scheme
/// both `http` and `https` are allowed; without a port, only the scheme's
/// default port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    scheme: Option<String>,
    host: HostMatch,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Exact(String),
    /// `*.example.com`: any subdomain of the suffix, not the suffix itself.
    Subdomain(String),
}

impl HostPattern {
    /// Parses one entry of an `http` grant.
    ///
    /// # Errors
    ///
    /// A message saying why the entry is not a host pattern.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("`{entry}` in grant `http` is not a host pattern: {why}");
        let (scheme, rest) = match entry.split_once("://") {
            Some((scheme, rest)) => {
                let scheme = scheme.to_ascii_lowercase();
                if scheme != "http" && scheme != "https" {
                    return Err(bad("only http and https are supported"));
                }
                (Some(scheme), rest)
            }
            None => (None, entry),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('?') || rest.contains('@') {
            return Err(bad("write only a host and an optional port, without path or credentials"));
        }
        let (host, port) = split_host_port(rest).map_err(|why| bad(&why))?;
        let host = host.to_ascii_lowercase();
        let host = if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(bad("a wildcard must be `*.` followed by a domain"));
            }
            HostMatch::Subdomain(suffix.to_string())
        } else if host.contains('*') {
            return Err(bad("`*` is only allowed as the first label (`*.example.com`)"));
        } else if host.is_empty() {
            return Err(bad("the host is empty"));
        } else {
            HostMatch::Exact(host)
        };
        Ok(HostPattern { scheme, host, port })
    }

    /// Whether this entry names one host (`api.example.com`, `127.0.0.1`),
    /// rather than a family of them (`*.example.com`).
    pub fn names_host(&self) -> bool {
        matches!(self.host, HostMatch::Exact(_))
    }

    /// Whether `url` is a destination this pattern allows.
    pub fn matches(&self, url: &Url) -> bool {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return false;
        }
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        let Some(host) = url.host_str() else { return false };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let host_ok = match &self.host {
            // `::ffff:127.0.0.1` in a grant and `[::ffff:7f00:1]` in a URL are one address.
            HostMatch::Exact(exact) => {
                host == *exact || matches!((host.parse::<IpAddr>(), exact.parse::<IpAddr>()), (Ok(a), Ok(b)) if a == b)
            }
            HostMatch::Subdomain(suffix) => {
                host.len() > suffix.len() + 1 && host.ends_with(suffix.as_str()) && {
                    let cut = host.len() - suffix.len();
                    host.as_bytes()[cut - 1] == b'.'
                }
            }
        };
        let port = url.port_or_known_default();
        let port_ok = match self.port {
            Some(wanted) => port == Some(wanted),
            None => port == Some(if scheme == "https" { 443 } else { 80 }),
        };
        host_ok && port_ok
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(scheme) = &self.scheme {
            write!(f, "{scheme}://")?;
        }
        match &self.host {
            HostMatch::Exact(host) if host.contains(':') => write!(f, "[{host}]")?,
            HostMatch::Exact(host) => f.write_str(host)?,
            HostMatch::Subdomain(suffix) => write!(f, "*.{suffix}")?,
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

fn split_host_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let parse_port = |p: &str| p.parse::<u16>().map_err(|_| format!("`{p}` is not a port number"));
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("an IPv6 address needs a closing `]`")?;
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(parse_port(port)?))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(format!("unexpected `{after}` after the IPv6 address")),
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Ok((host, Some(parse_port(port)?))),
        Some(_) => Err("write an IPv6 address in brackets, e.g. `[::1]:8080`".to_string()),
        None => Ok((text, None)),
    }
}

/// An allowed e-mail recipient: `ops@example.com` or `*@example.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressPattern {
    /// One address (compared case-insensitively).
    Exact(String),
    /// Any address at this domain.
    Domain(String),
}

impl AddressPattern {
    /// Parses one entry of an `email` grant.
    ///
    /// # Errors
    ///
    /// A message saying why the entry is not an address pattern.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let lower = entry.trim().to_ascii_lowercase();
        match lower.split_once('@') {
            Some(("*", domain)) if !domain.is_empty() && !domain.contains('@') => {
                Ok(AddressPattern::Domain(domain.to_string()))
            }
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@') => {
                Ok(AddressPattern::Exact(lower))
            }
            _ => Err(format!("`{entry}` in grant `email` is not an address or `*@domain` pattern")),
        }
    }

    /// Whether this pattern allows `address`.
    pub fn matches(&self, address: &str) -> bool {
        let address = address.trim().to_ascii_lowercase();
        match self {
            AddressPattern::Exact(exact) => address == *exact,
            AddressPattern::Domain(domain) => address.rsplit_once('@').is_some_and(|(_, d)| d == domain),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn host_patterns_check_host_scheme_and_port() {
        let exact = HostPattern::parse("api.example.com").unwrap();
        assert!(exact.matches(&url("https://api.example.com/v1")));
        assert!(exact.matches(&url("http://API.example.com/")));
        assert!(!exact.matches(&url("https://api.example.com:8443/")));
        assert!(!exact.matches(&url("https://evil.api.example.com/")));
        assert!(!exact.matches(&url("https://api.example.com.evil.net/")));

        let wild = HostPattern::parse("*.example.com").unwrap();
        assert!(wild.matches(&url("https://a.b.example.com/")));
        assert!(!wild.matches(&url("https://example.com/")));
        assert!(!wild.matches(&url("https://badexample.com/")));

        let pinned = HostPattern::parse("https://hooks.example.com:8443").unwrap();
        assert!(pinned.matches(&url("https://hooks.example.com:8443/x")));
        assert!(!pinned.matches(&url("http://hooks.example.com:8443/x")));

        let loopback = HostPattern::parse("127.0.0.1:8080").unwrap();
        assert!(loopback.matches(&url("http://127.0.0.1:8080/hook")));
        assert!(!loopback.matches(&url("http://127.0.0.1:8081/hook")));

        let mapped = HostPattern::parse("[::ffff:127.0.0.1]:9000").unwrap();
        assert!(mapped.matches(&url("http://[::ffff:127.0.0.1]:9000/")));
        assert!(mapped.names_host() && !wild.names_host());

        let v6 = HostPattern::parse("[::1]:9000").unwrap();
        assert!(v6.matches(&url("http://[::1]:9000/")));
        assert_eq!(v6.to_string(), "[::1]:9000");
        assert!(!HostPattern::parse("*.example.com").unwrap().matches(&url("ftp://a.example.com/")));
    }

    #[test]
    fn malformed_host_patterns_say_why() {
        for (entry, why) in [
            ("ftp://x.com", "only http and https"),
            ("x.com/path", "without path"),
            ("a.*.com", "first label"),
            ("x.com:http", "not a port number"),
            ("::1", "brackets"),
        ] {
            let error = HostPattern::parse(entry).unwrap_err();
            assert!(error.contains(why), "{entry}: {error}");
        }
    }

    #[test]
    fn address_patterns() {
        let ops = AddressPattern::parse("Ops@Example.com").unwrap();
        assert!(ops.matches("ops@example.com"));
        assert!(!ops.matches("dev@example.com"));
        let domain = AddressPattern::parse("*@example.com").unwrap();
        assert!(domain.matches("anyone@EXAMPLE.com"));
        assert!(!domain.matches("anyone@example.com.evil"));
        assert!(AddressPattern::parse("nobody").is_err());
    }

    #[test]
    fn secrets_must_be_listed() {
        let mut grants = Grants::new();
        grants.insert("secrets", GrantSpec::All, Default::default());
        assert!(StepGrants::from_grants(&grants).unwrap_err().contains("must list the secrets"));
        let mut grants = Grants::new();
        grants.insert("secrets", GrantSpec::List(vec!["KEY".into()]), Default::default());
        grants.insert("http", GrantSpec::List(vec!["127.0.0.1:1".into()]), Default::default());
        let resolved = StepGrants::from_grants(&grants).unwrap();
        assert!(resolved.secrets.contains("KEY"));
        assert!(resolved.allows_url(&url("http://127.0.0.1:1/")));
        assert!(!resolved.allows_url(&url("http://127.0.0.1:2/")));
        assert!(resolved.names_url(&url("http://127.0.0.1:1/")));
    }

    #[test]
    fn only_an_entry_naming_the_host_names_it() {
        let mut grants = Grants::new();
        grants.insert("http", GrantSpec::List(vec!["*.0.0.1".into(), "api.example.com".into()]), Default::default());
        let resolved = StepGrants::from_grants(&grants).unwrap();
        assert!(resolved.allows_url(&url("http://127.0.0.1/")), "a wildcard allows it");
        assert!(!resolved.names_url(&url("http://127.0.0.1/")), "but does not name it");
        assert!(resolved.names_url(&url("https://api.example.com/")));
        let mut grants = Grants::new();
        grants.insert("http", GrantSpec::All, Default::default());
        let all = StepGrants::from_grants(&grants).unwrap();
        assert!(all.allows_url(&url("https://api.example.com/")) && !all.names_url(&url("https://api.example.com/")));
    }
}
