//! Turns a creation request (JSON recipients or a CSV) into validated, rendered recipients,
//! before anything is stored: every bad line with its reason, duplicates merged and reported,
//! opted-out numbers kept as `skipped`.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared_contracts::{MessageText, PhoneNumber};

use super::csv;
use super::template::{Template, var_name};

/// How many offending lines an error answer lists (all are counted).
pub const MAX_LISTED: usize = 100;

/// One recipient as JSON callers write it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RecipientInput {
    /// A phone number (a string, or digits as a number).
    pub phone: Value,
    /// The template's variables.
    #[serde(default)]
    pub vars: BTreeMap<String, Value>,
}

/// A recipient ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecipient {
    /// The CSV line (header = 1) or the 1-based position in the JSON list.
    pub line: usize,
    pub phone: String,
    /// The variables as a JSON object.
    pub vars: String,
    pub rendered: String,
    /// On the opt-out list: stored as `skipped`.
    pub opted_out: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    pub line: usize,
    pub phone: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Duplicate {
    pub line: usize,
    pub phone: String,
    /// The line kept.
    pub first_line: usize,
}

/// What validation produced.
#[derive(Debug, Default)]
pub struct Intake {
    pub recipients: Vec<NewRecipient>,
    pub duplicates: Vec<Duplicate>,
    pub opted_out: usize,
}

/// Why nothing was stored.
#[derive(Debug, PartialEq, Eq)]
pub enum IntakeError {
    /// The request as a whole (no recipients, a CSV without `phone`, too many rows...).
    Request { field: &'static str, reason: String },
    /// Lines with problems: all of them, in line order.
    Lines(Vec<LineError>),
}

/// The recipients, from exactly one of `recipients` and `csv`.
pub enum Source<'a> {
    Json(&'a [RecipientInput]),
    Csv(&'a str),
}

/// A JSON value as the text a template gets (strings as they are, numbers and booleans printed).
fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Raw rows: line, phone text, variables (names normalized), or the line's own error.
type Row = (usize, String, Result<BTreeMap<String, String>, String>);

fn rows_from_json(list: &[RecipientInput]) -> Vec<Row> {
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            let phone = value_text(&r.phone).unwrap_or_else(|| r.phone.to_string());
            let mut vars = BTreeMap::new();
            let mut bad = None;
            for (name, value) in &r.vars {
                match value_text(value) {
                    Some(text) => {
                        vars.insert(var_name(name), text);
                    }
                    None => bad = Some(format!("variable {name:?} is not a string, number or boolean")),
                }
            }
            (i + 1, phone, bad.map_or(Ok(vars), Err))
        })
        .collect()
}

fn rows_from_csv(text: &str) -> Result<Vec<Row>, IntakeError> {
    let records =
        csv::parse(text).map_err(|e| IntakeError::Request { field: "csv", reason: e.to_string() })?;
    let mut records = records.into_iter();
    let header = records.next().ok_or_else(|| IntakeError::Request {
        field: "csv",
        reason: "the CSV is empty: the first line must be a header with `phone` and one column per variable"
            .to_owned(),
    })?;
    let names: Vec<String> = header.fields.iter().map(|f| var_name(f)).collect();
    let phone_col = names.iter().position(|n| n == "phone").ok_or_else(|| IntakeError::Request {
        field: "csv",
        reason: format!(
            "the header (line {}) has no `phone` column: it has {:?}",
            header.line, header.fields
        ),
    })?;
    let mut seen = HashSet::new();
    if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(IntakeError::Request {
            field: "csv",
            reason: format!("the header has the column {dup:?} twice"),
        });
    }
    Ok(records
        .map(|record| {
            let phone = record.fields.get(phone_col).cloned().unwrap_or_default();
            if record.fields.len() != names.len() {
                let reason = format!("has {} fields, the header has {}", record.fields.len(), names.len());
                return (record.line, phone, Err(reason));
            }
            let vars = names
                .iter()
                .zip(record.fields)
                .enumerate()
                .filter(|(i, _)| *i != phone_col)
                .map(|(_, (name, value))| (name.clone(), value))
                .collect();
            (record.line, phone, Ok(vars))
        })
        .collect())
}

/// Validates and renders every recipient; `opt_outs` holds the normalized numbers that never
/// receive a campaign of this client.
pub fn validate(
    template: &Template,
    source: Source<'_>,
    opt_outs: &HashSet<String>,
) -> Result<Intake, IntakeError> {
    let rows = match source {
        Source::Json(list) => rows_from_json(list),
        Source::Csv(text) => rows_from_csv(text)?,
    };
    if rows.is_empty() {
        return Err(IntakeError::Request {
            field: "recipients",
            reason: "the campaign has no recipients".into(),
        });
    }
    if rows.len() > super::MAX_RECIPIENTS {
        return Err(IntakeError::Request {
            field: "recipients",
            reason: format!("{} recipients: a campaign has at most {}", rows.len(), super::MAX_RECIPIENTS),
        });
    }
    let mut intake = Intake { recipients: Vec::with_capacity(rows.len()), ..Intake::default() };
    let mut errors = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::with_capacity(rows.len());
    for (line, raw_phone, vars) in rows {
        let fail = |reason: String| LineError { line, phone: raw_phone.clone(), reason };
        let vars = match vars {
            Ok(vars) => vars,
            Err(reason) => {
                errors.push(fail(reason));
                continue;
            }
        };
        let phone = match PhoneNumber::parse(&raw_phone) {
            Ok(phone) => phone.as_str().to_owned(),
            Err(reason) => {
                errors.push(fail(reason));
                continue;
            }
        };
        let rendered = match template.render(&phone, &vars) {
            Ok(text) => text,
            Err(missing) => {
                errors.push(fail(format!("no value for the template variable(s) {}", missing.join(", "))));
                continue;
            }
        };
        let rendered = match MessageText::parse(rendered) {
            Ok(text) => text.as_str().to_owned(),
            Err(reason) => {
                errors.push(fail(format!("the rendered message is not sendable: {reason}")));
                continue;
            }
        };
        if let Some(&first) = first_line.get(&phone) {
            intake.duplicates.push(Duplicate { line, phone, first_line: first });
            continue;
        }
        first_line.insert(phone.clone(), line);
        let opted_out = opt_outs.contains(&phone);
        intake.opted_out += usize::from(opted_out);
        let vars = serde_json::to_string(&vars).unwrap_or_else(|_| "{}".to_owned());
        intake.recipients.push(NewRecipient { line, phone, vars, rendered, opted_out });
    }
    if errors.is_empty() { Ok(intake) } else { Err(IntakeError::Lines(errors)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_intake(text: &str, opt_outs: &[&str]) -> Result<Intake, IntakeError> {
        let template = Template::parse("Hola {{nombre}}").unwrap();
        let opt_outs = opt_outs.iter().map(|s| (*s).to_owned()).collect();
        validate(&template, Source::Csv(text), &opt_outs)
    }

    #[test]
    fn a_good_csv_is_rendered_with_duplicates_merged_and_opt_outs_skipped() {
        let intake = csv_intake(
            "Phone;Nombre\n+54 9 11 1111-1111;Ana\n5491122222222;Beto\n5491111111111;Ana otra vez\n5491133333333;Caro\n",
            &["5491133333333"],
        )
        .unwrap();
        let phones: Vec<_> =
            intake.recipients.iter().map(|r| (r.line, r.phone.as_str(), r.opted_out)).collect();
        assert_eq!(
            phones,
            vec![(2, "5491111111111", false), (3, "5491122222222", false), (5, "5491133333333", true)]
        );
        assert_eq!(intake.recipients[0].rendered, "Hola Ana");
        assert_eq!(intake.recipients[0].vars, r#"{"nombre":"Ana"}"#);
        assert_eq!(
            intake.duplicates,
            vec![Duplicate { line: 4, phone: "5491111111111".into(), first_line: 2 }]
        );
        assert_eq!(intake.opted_out, 1);
    }

    #[test]
    fn every_bad_line_is_named_with_its_reason() {
        let long = "x".repeat(shared_contracts::MAX_MESSAGE_CHARS);
        let text = format!(
            "phone,nombre\n5491111111111,Ana\nabc,Beto\n5491122222222,\n5491133333333,{long}\n1,2,3\n"
        );
        let IntakeError::Lines(errors) = csv_intake(&text, &[]).unwrap_err() else { panic!("line errors") };
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6]);
        assert!(errors[0].reason.contains("contains"), "{:?}", errors[0]);
        assert!(errors[1].reason.contains("nombre"), "{:?}", errors[1]);
        assert!(errors[2].reason.contains("not sendable"), "{:?}", errors[2]);
        assert!(errors[3].reason.contains("3 fields"), "{:?}", errors[3]);
    }

    #[test]
    fn a_csv_without_phone_or_rows_is_refused_as_a_whole() {
        assert!(matches!(csv_intake("name\nAna\n", &[]), Err(IntakeError::Request { field: "csv", .. })));
        assert!(matches!(
            csv_intake("phone,nombre\n", &[]),
            Err(IntakeError::Request { field: "recipients", .. })
        ));
        assert!(matches!(csv_intake("", &[]), Err(IntakeError::Request { field: "csv", .. })));
    }

    #[test]
    fn json_recipients_accept_numbers() {
        let list: Vec<RecipientInput> = serde_json::from_str(
            r#"[{"phone": 5491111111111, "vars": {"Nombre": "Ana"}}, {"phone": "5491122222222", "vars": {"nombre": 7}}]"#,
        )
        .unwrap();
        let template = Template::parse("Hola {{nombre}}").unwrap();
        let intake = validate(&template, Source::Json(&list), &HashSet::new()).unwrap();
        let texts: Vec<_> = intake.recipients.iter().map(|r| r.rendered.as_str()).collect();
        assert_eq!(texts, vec!["Hola Ana", "Hola 7"]);
    }
}
