//! The login QR: the page's string rendered once as PNG bytes (served by `/qr`) and the same PNG as
//! a data URL (for `<img src>`, in the status), and as text for a terminal. The string is opaque:
//! whatever WhatsApp draws is what we encode. Also the pairing code's display form (`ABCD-EFGH`).

use std::io::Cursor;
use std::sync::Arc;

use base64::Engine;
use image::{ImageFormat, Luma};
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;

/// Pixels per QR module: a 5-field code (version ~10) becomes a ~330 px image.
const MODULE_PX: u32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the QR string ({len} bytes) does not fit in a QR code: {source}")]
    Encode { len: usize, source: qrcode::types::QrError },
    #[error("encoding the QR as PNG failed: {0}")]
    Png(#[from] image::ImageError),
}

/// The QR as PNG bytes.
pub fn png(code: &str) -> Result<Vec<u8>, QrError> {
    let qr = QrCode::new(code.as_bytes()).map_err(|source| QrError::Encode { len: code.len(), source })?;
    let image = qr.render::<Luma<u8>>().module_dimensions(MODULE_PX, MODULE_PX).quiet_zone(true).build();
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Png)?;
    Ok(out.into_inner())
}

/// A QR rendered once: its PNG bytes, and the same PNG as `data:image/png;base64,...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrImage {
    pub png: Arc<[u8]>,
    pub data_url: String,
}

/// Renders the QR as PNG, and encodes that PNG as a data URL.
pub fn render(code: &str) -> Result<QrImage, QrError> {
    let png = png(code)?;
    let data_url =
        format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&png));
    Ok(QrImage { png: png.into(), data_url })
}

/// The QR drawn with Unicode half blocks, dark on a light terminal background inverted for readability.
pub fn ascii(code: &str) -> Result<String, QrError> {
    let qr = QrCode::new(code.as_bytes()).map_err(|source| QrError::Encode { len: code.len(), source })?;
    Ok(qr
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// `ABCDEFGH` as WhatsApp shows it, `ABCD-EFGH`; any other length is left as it is.
pub fn display_code(code: &str) -> String {
    let bare: String = code.chars().filter(|c| *c != '-').collect();
    if bare.chars().count() == 8 {
        let head: String = bare.chars().take(4).collect();
        let tail: String = bare.chars().skip(4).collect();
        format!("{head}-{tail}")
    } else {
        code.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARE: &str = "2@Xq3kVd9Lq0Zr7mH2fJ+aB/cD==,Ak9sR1mQ0vYbT3wXz6cN8pLhE4uG2jF5oKdS7iVaW1M=,\
                        Bn8rQ2lP1uXaS4vWy5bM9oKgD3tF1iE6nJcR8hUzV0L=,c2VjcmV0LWtleS1mb3ItdGVzdHM=,1";

    #[test]
    fn the_png_and_its_data_url_decode_to_exactly_the_input() {
        for code in [BARE.to_owned(), format!("https://wa.me/settings/linked_devices#{BARE}")] {
            let image = render(&code).expect("renders");
            assert_eq!(e2e::decode_qr_png(&image.png).expect("one QR that decodes"), code);
            let b64 = image.data_url.strip_prefix("data:image/png;base64,").expect("a PNG data URL");
            assert!(b64.starts_with("iVBORw0KGgo"));
            let decoded = base64::engine::general_purpose::STANDARD.decode(b64).expect("base64");
            assert_eq!(&decoded[..], &image.png[..], "the data URL carries the same PNG");
        }
    }

    #[test]
    fn ascii_rendering_has_one_line_per_two_module_rows() {
        let text = ascii("2@abc,def").expect("renders");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > 10);
        assert!(lines.iter().all(|l| l.chars().count() == lines[0].chars().count()));
        assert!(text.contains('█') || text.contains('▀') || text.contains('▄'));
    }

    #[test]
    fn a_string_too_long_for_a_qr_is_an_error() {
        assert!(matches!(png(&"x".repeat(8000)), Err(QrError::Encode { len: 8000, .. })));
    }
}
