//! URLs: the configured origin, the pages under it, and the rule that the
//! auth header never leaves it.

use url::Url;
use weft_plugin_sdk::PluginError;

/// A parsed base URL; requests are made only to its origin.
#[derive(Debug, Clone)]
pub struct Origin {
    base: Url,
}

impl Origin {
    /// Parses an absolute `http://` or `https://` URL without credentials.
    pub fn parse(text: &str) -> Result<Origin, PluginError> {
        let invalid = |why: String| PluginError::config(format!("invalid URL `{text}`: {why}"));
        let base = Url::parse(text.trim()).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("only http and https are supported".into()));
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(invalid("missing host".into()));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(invalid(
                "credentials in URLs are not supported; use authToken".into(),
            ));
        }
        Ok(Origin { base })
    }

    /// The URL as given.
    pub fn url(&self) -> &Url {
        &self.base
    }

    /// `path` (with its query) under the base URL's path, with `params` added.
    pub fn endpoint<'a>(
        &self,
        path: &str,
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Url, PluginError> {
        let mut url = self.base.clone();
        let (path_part, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let joined = format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            path_part.trim_start_matches('/')
        );
        let trimmed = joined.trim_end_matches('/');
        url.set_path(if trimmed.is_empty() { "/" } else { trimmed });
        url.set_query(query.filter(|q| !q.is_empty()));
        url.set_fragment(None);
        let mut params = params.into_iter().peekable();
        if params.peek().is_some() {
            url.query_pairs_mut().extend_pairs(params);
        }
        Ok(url)
    }

    /// Resolves a next-page link against `page` and refuses one that leaves
    /// the origin, so the auth header never goes elsewhere.
    pub fn next_page(&self, page: &Url, link: &str) -> Result<Url, PluginError> {
        let next = page.join(link.trim()).map_err(|e| {
            PluginError::data(format!("the next-page link `{link}` is not a URL: {e}"))
        })?;
        if next.origin() != self.base.origin() {
            return Err(PluginError::data(format!(
                "the next-page link `{next}` leaves {}; the connector only follows links on the base URL's origin",
                self.base.origin().ascii_serialization()
            )));
        }
        Ok(next)
    }
}

/// Sets (replacing) query parameter `name` to `value`.
pub fn with_param(url: &Url, name: &str, value: &str) -> Url {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut out = url.clone();
    out.set_query(None);
    {
        let mut pairs = out.query_pairs_mut();
        pairs.extend_pairs(kept);
        pairs.append_pair(name, value);
    }
    out
}

/// The `rel="next"` target of a `Link` header value, if any (RFC 8288).
pub fn link_next(header: &str) -> Option<&str> {
    // Targets are in <>, so a comma inside one does not split links.
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let close = after.find('>')?;
        let target = &after[..close];
        let params_end = after[close..].find('<').map_or(after.len(), |i| close + i);
        let params = &after[close + 1..params_end];
        let is_next = params.split(';').any(|p| {
            let Some((key, value)) = p.split_once('=') else {
                return false;
            };
            key.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_end_matches(',')
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target);
        }
        rest = &after[params_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_join_the_base_path_and_add_params() {
        let o = Origin::parse("https://api.example.com/v1/").unwrap();
        let u = o.endpoint("/orders?status=all", [("limit", "10")]).unwrap();
        assert_eq!(
            u.as_str(),
            "https://api.example.com/v1/orders?status=all&limit=10"
        );
        let u = o.endpoint("", [("q", "a b&c")]).unwrap();
        assert_eq!(u.as_str(), "https://api.example.com/v1?q=a+b%26c");
        assert!(Origin::parse("ftp://x").is_err());
        assert!(Origin::parse("https://u:p@x").is_err());
        assert!(Origin::parse("/relative").is_err());
    }

    #[test]
    fn next_links_stay_on_the_origin() {
        let o = Origin::parse("http://127.0.0.1:8080/api").unwrap();
        let page = o.endpoint("/items", []).unwrap();
        let next = o.next_page(&page, "/api/items?page=2").unwrap();
        assert_eq!(next.as_str(), "http://127.0.0.1:8080/api/items?page=2");
        let next = o.next_page(&page, "?page=3").unwrap();
        assert_eq!(next.as_str(), "http://127.0.0.1:8080/api/items?page=3");
        let err = o.next_page(&page, "http://evil.example/steal").unwrap_err();
        assert!(err.message.contains("leaves"), "{}", err.message);
        assert!(o.next_page(&page, "http://127.0.0.1:9999/x").is_err());
    }

    #[test]
    fn link_headers_yield_the_next_target() {
        let h = r#"<https://a/x?page=1>; rel="prev", <https://a/x?page=3,4>; rel="next last""#;
        assert_eq!(link_next(h), Some("https://a/x?page=3,4"));
        assert_eq!(link_next(r#"<https://a/x>; rel="prev""#), None);
        assert_eq!(link_next("garbage <unterminated"), None);
        assert_eq!(link_next("<https://a/n>;rel=next"), Some("https://a/n"));
        let h = r#"</x?page=2>; rel="next", </x?page=1>; rel="first""#;
        assert_eq!(link_next(h), Some("/x?page=2"));
    }

    #[test]
    fn params_are_replaced_not_repeated() {
        let u = Url::parse("http://h/p?a=1&cursor=x").unwrap();
        assert_eq!(
            with_param(&u, "cursor", "y").as_str(),
            "http://h/p?a=1&cursor=y"
        );
    }
}
