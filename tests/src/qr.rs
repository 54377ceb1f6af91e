//! Reading QR codes the way a phone would: decode a PNG (or a `data:image/png;base64,` URL, as in
//! `/status`'s `qr.base64`) to the one string it encodes.

use anyhow::{Context, bail};
use base64::Engine;

/// Decodes a PNG holding exactly one QR code to its content.
pub fn decode_qr_png(png: &[u8]) -> anyhow::Result<String> {
    let image = image::load_from_memory(png).context("the QR image is not a decodable PNG")?.to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    if grids.len() != 1 {
        bail!("expected exactly one QR code in the image, found {}", grids.len());
    }
    Ok(grids[0].decode().context("the QR code does not decode")?.1)
}

/// Decodes a `data:image/png;base64,...` URL holding exactly one QR code to its content.
pub fn decode_qr_data_url(data_url: &str) -> anyhow::Result<String> {
    let b64 = data_url.strip_prefix("data:image/png;base64,").context("not a PNG data URL")?;
    let png = base64::engine::general_purpose::STANDARD.decode(b64).context("the data URL is not base64")?;
    decode_qr_png(&png)
}
