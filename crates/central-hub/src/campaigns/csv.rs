//! A small RFC 4180 reader for recipient uploads: UTF-8 (a leading BOM is dropped), `,` or `;`
//! (whichever the header line uses outside quotes), quoted fields with `""` escapes and line
//! breaks, CRLF or LF line ends, blank lines skipped. Each record keeps the line it starts on, so
//! validation errors name the line a person sees in a spreadsheet.

/// One record: the 1-based line it starts on, and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub line: usize,
    pub fields: Vec<String>,
}

/// A file that cannot be read as CSV at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct CsvError {
    pub line: usize,
    pub reason: String,
}

/// The delimiter of the header line: `;` when it has more of them than `,` outside quotes.
pub fn detect_delimiter(text: &str) -> u8 {
    let header = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let (mut commas, mut semicolons, mut quoted) = (0, 0, false);
    for c in header.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => commas += 1,
            ';' if !quoted => semicolons += 1,
            _ => {}
        }
    }
    if semicolons > commas { b';' } else { b',' }
}

/// Reads every record of `text` (the header included, as the first record).
pub fn parse(text: &str) -> Result<Vec<Record>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let delimiter = char::from(detect_delimiter(text));
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1;
    let mut record_line = 1;
    let mut quoted = false;
    let mut quote_opened_at = 0;
    // The field was quoted: text after its closing quote is an error, not data.
    let mut closed = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => {
                    quoted = false;
                    closed = true;
                }
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !closed => {
                quoted = true;
                quote_opened_at = line;
            }
            c if c == delimiter => {
                fields.push(std::mem::take(&mut field));
                closed = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                fields.push(std::mem::take(&mut field));
                push_record(&mut records, record_line, std::mem::take(&mut fields));
                closed = false;
                line += 1;
                record_line = line;
            }
            _ if closed && !c.is_whitespace() => {
                return Err(CsvError {
                    line,
                    reason: format!("text {c:?} after the closing quote of a field: quote the whole field"),
                });
            }
            _ if closed => {}
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(CsvError {
            line: quote_opened_at,
            reason: "a quoted field is never closed (a `\"` is missing)".to_owned(),
        });
    }
    if !field.is_empty() || !fields.is_empty() || closed {
        fields.push(field);
        push_record(&mut records, record_line, fields);
    }
    Ok(records)
}

fn push_record(records: &mut Vec<Record>, line: usize, fields: Vec<String>) {
    let blank = fields.iter().all(|f| f.trim().is_empty());
    if !blank {
        records.push(Record { line, fields });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(records: &[Record]) -> Vec<(usize, Vec<&str>)> {
        records.iter().map(|r| (r.line, r.fields.iter().map(String::as_str).collect())).collect()
    }

    #[test]
    fn commas_semicolons_quotes_and_line_breaks() {
        let text =
            "\u{feff}phone;nombre\r\n5491;\"Ana; \"\"la\"\" jefa\"\r\n\r\n5492;\"dos\nlíneas\"\n5493;Ñandú";
        let records = parse(text).unwrap();
        assert_eq!(
            fields(&records),
            vec![
                (1, vec!["phone", "nombre"]),
                (2, vec!["5491", "Ana; \"la\" jefa"]),
                (4, vec!["5492", "dos\nlíneas"]),
                (6, vec!["5493", "Ñandú"]),
            ]
        );
        assert_eq!(detect_delimiter("phone,nombre\n"), b',');
        assert_eq!(fields(&parse("a,b\n1,\n").unwrap())[1], (2, vec!["1", ""]));
    }

    #[test]
    fn an_unclosed_quote_names_the_line_it_opened_on() {
        let err = parse("phone,n\n1,ok\n2,\"never closed\n3,x\n").unwrap_err();
        assert_eq!(err.line, 3);
        let err = parse("phone,n\n1,\"a\"b\n").unwrap_err();
        assert_eq!(err.line, 2, "{err}");
    }
}
