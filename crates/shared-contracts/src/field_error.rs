//! The field a JSON body was refused for, so each service's JSON extractor can answer
//! `400 VALIDATION_ERROR` with `detail.field` and the newtype's own reason.
//!
//! axum's `Json` deserializes through `serde_path_to_error`; its rejection keeps that error in its
//! source chain, which is where this looks.

use serde_path_to_error::Error as PathError;

/// A value in a JSON body that did not parse: where (`to`, `user.email`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// The field and reason of a body's data error (a well-formed JSON value that is not valid for
/// its field), found in `error`'s source chain; `None` for syntax errors, a missing field (no path)
/// or an error of another kind.
pub fn field_error(error: &(dyn std::error::Error + 'static)) -> Option<FieldError> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(path_error) = e.downcast_ref::<PathError<serde_json::Error>>() {
            return from_path_error(path_error);
        }
        current = e.source();
    }
    None
}

/// Deserializes `bytes` as `T`, naming the field on a data error (`Err(None)` for other errors).
pub fn from_json_slice<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, (serde_json::Error, Option<FieldError>)> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let field = from_path_error(&e);
        (e.into_inner(), field)
    })?;
    deserializer.end().map_err(|e| (e, None))?;
    Ok(value)
}

fn from_path_error(error: &PathError<serde_json::Error>) -> Option<FieldError> {
    let inner = error.inner();
    if !inner.is_data() {
        return None;
    }
    let field = error.path().to_string();
    if field.is_empty() || field == "." {
        return None;
    }
    // serde_json appends the position; the reason reads better without it.
    let full = inner.to_string();
    let position = format!(" at line {} column {}", inner.line(), inner.column());
    let message = full.strip_suffix(&position).unwrap_or(&full).to_owned();
    Some(FieldError { field, message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SendRequest;

    #[test]
    fn a_bad_value_names_its_field_and_the_newtypes_reason() {
        let (_, field) =
            from_json_slice::<SendRequest>(br#"{"to":"abc","message":"hola"}"#).map(|_| ()).unwrap_err();
        let field = field.expect("a data error names its field");
        assert_eq!(field.field, "to");
        assert_eq!(field.message, r#"phone number "abc" contains 'a': use digits with the country code"#);
        let (_, field) = from_json_slice::<SendRequest>(br#"{"to":"5491123456789","message":" "}"#)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            field.unwrap(),
            FieldError { field: "message".into(), message: "message is empty".into() }
        );
        let (_, field) =
            from_json_slice::<SendRequest>(br#"{"cliente_id":0,"to":"5491123456789","message":"x"}"#)
                .map(|_| ())
                .unwrap_err();
        assert_eq!(field.unwrap().field, "cliente_id");
    }

    #[test]
    fn syntax_errors_and_missing_fields_name_no_field() {
        for body in [&br#"{"to":"#[..], br#"{"to":"5491123456789"}"#, br"[]"] {
            let (_, field) = from_json_slice::<SendRequest>(body).map(|_| ()).unwrap_err();
            assert_eq!(field, None, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn the_field_is_found_through_a_chain_of_sources() {
        #[derive(Debug)]
        struct Wrapper(PathError<serde_json::Error>);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let mut de = serde_json::Deserializer::from_str(r#"{"to":"12","message":"x"}"#);
        let error = serde_path_to_error::deserialize::<_, SendRequest>(&mut de).unwrap_err();
        let found = field_error(&Wrapper(error)).expect("found in the source");
        assert_eq!(found.field, "to");
        assert!(found.message.contains("2 digits"), "{}", found.message);
    }
}
