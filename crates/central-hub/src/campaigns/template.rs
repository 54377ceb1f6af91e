//! A campaign's message template: text with `{{variable}}` placeholders, parsed once and
//! rendered per recipient. Variable names are trimmed and compared in lower case, so a CSV column
//! `Nombre` fills `{{ nombre }}`; `{{phone}}` is the recipient's number.

use std::collections::BTreeMap;

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(String),
}

/// Normalizes a variable or column name: trimmed, lower case.
pub fn var_name(raw: &str) -> String {
    raw.trim().to_lowercase()
}

impl Template {
    /// Parses `text`; an unclosed `{{` or an empty `{{ }}` is refused with where it is.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("the template is empty".to_owned());
        }
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| {
                format!("the template has a `{{{{` at character {} that is never closed with `}}}}`", {
                    text[..offset + open].chars().count() + 1
                })
            })?;
            let name = var_name(&after[..close]);
            if name.is_empty() || name.contains("{{") {
                return Err(format!(
                    "the template has an empty or nested placeholder at character {}",
                    text[..offset + open].chars().count() + 1
                ));
            }
            parts.push(Part::Var(name));
            let consumed = open + 2 + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// The variables the template uses, each once, in order of appearance.
    pub fn variables(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for part in &self.parts {
            if let Part::Var(name) = part
                && !out.contains(&name.as_str())
            {
                out.push(name);
            }
        }
        out
    }

    /// Renders with `vars` (names already normalized) and the recipient's `phone`; the error
    /// names every variable with no value (absent or blank).
    pub fn render(&self, phone: &str, vars: &BTreeMap<String, String>) -> Result<String, Vec<String>> {
        let mut out = String::new();
        let mut missing: Vec<String> = Vec::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var(name) => match vars.get(name).map(String::as_str) {
                    Some(value) if !value.trim().is_empty() => out.push_str(value),
                    _ if name == "phone" => out.push_str(phone),
                    _ => {
                        if !missing.contains(name) {
                            missing.push(name.clone());
                        }
                    }
                },
            }
        }
        if missing.is_empty() { Ok(out) } else { Err(missing) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn placeholders_are_filled_with_trimmed_case_insensitive_names() {
        let t = Template::parse("Hola {{ Nombre }}, tu turno es el {{dia}}. {{nombre}}!").unwrap();
        assert_eq!(t.variables(), vec!["nombre", "dia"]);
        let text = t.render("549111", &vars(&[("nombre", "Ana"), ("dia", "lunes")])).unwrap();
        assert_eq!(text, "Hola Ana, tu turno es el lunes. Ana!");
        assert_eq!(Template::parse("{{phone}}").unwrap().render("549111", &vars(&[])).unwrap(), "549111");
    }

    #[test]
    fn every_missing_or_blank_variable_is_named() {
        let t = Template::parse("{{a}} {{b}} {{c}}").unwrap();
        assert_eq!(t.render("1", &vars(&[("b", " ")])).unwrap_err(), vec!["a", "b", "c"]);
    }

    #[test]
    fn broken_templates_are_refused_with_the_position() {
        assert!(Template::parse("Hola {{nombre").unwrap_err().contains("character 6"));
        assert!(Template::parse("Hola {{ }}").unwrap_err().contains("empty"));
        assert!(Template::parse("  ").unwrap_err().contains("empty"));
        assert_eq!(Template::parse("sin variables").unwrap().variables(), Vec::<&str>::new());
    }
}
