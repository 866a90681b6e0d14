//! Line numbers for configuration errors: a key path (`sets.db.every`,
//! `notify.webhook[0]`) is looked up in the file's spanned parse tree.

use toml::de::{DeTable, DeValue};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

pub fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

/// `sets.db.every`, `notify.webhook[0]`.
pub fn display(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The 1-based line of the deepest part of `path` found in `text` (the key itself when
/// it is there, else the table or array that should hold it).
pub fn line_of(text: &str, path: &[Seg]) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let mut value: &DeValue = &DeValue::Table(doc.get_ref().clone());
    let mut span: Option<std::ops::Range<usize>> = None;
    for seg in path {
        let next = match (seg, value) {
            (Seg::Key(k), DeValue::Table(t)) => t
                .iter()
                .find(|(name, _)| name.get_ref().as_ref() == k.as_str())
                .map(|(name, v)| (name.span(), v)),
            (Seg::Index(i), DeValue::Array(a)) => a.get(*i).map(|v| (v.span(), v)),
            _ => None,
        };
        let Some((s, v)) = next else { break };
        span = Some(s);
        value = v.get_ref();
    }
    span.map(|s| line_at(text, s.start))
}

pub fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_lines() {
        let text = "repository = \"/r\"\n[notify]\nwebhook = [\n  \"a\",\n  3,\n]\n\n[sets.db]\npaths = [\"/srv\"]\nevery = 4\n[sets.db.weekly]\nat = \"x\"\n";
        let cases: &[(&[Seg], Option<usize>)] = &[
            (&[Seg::Key("repository".into())], Some(1)),
            (&[key("notify"), key("webhook"), Seg::Index(1)], Some(5)),
            (&[key("sets"), key("db"), key("every")], Some(10)),
            (
                &[key("sets"), key("db"), key("weekly"), key("at")],
                Some(12),
            ),
            // Not in the file: the nearest enclosing key.
            (&[key("sets"), key("db"), key("keep")], Some(8)),
            (&[key("nothing")], None),
        ];
        for (path, line) in cases {
            assert_eq!(line_of(text, path), *line, "{}", display(path));
        }
    }
}
