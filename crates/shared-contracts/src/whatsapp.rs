//! What the bridge found in the WhatsApp Web page it opened: the build, and where each internal it
//! uses was found (the inventory), reported by the manager's `/status` and `/health` and by
//! `session-manager probe --json`.

use serde::{Deserialize, Serialize};

/// One internal the bridge uses and the location (`Module.member`) that resolved, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InternalLocation {
    /// The bridge's name for it (`advSecret`, `Socket`, `pairing`...).
    pub name: String,
    /// What it serves: `login`, `state`, `send` (required), `acks`, `incoming`, `pairing`.
    pub group: String,
    pub required: bool,
    /// The location that resolved (`WAWebUserPrefsMultiDevice.getADVSecretKey`), `None` when missing.
    pub location: Option<String>,
    /// Every location the bridge knows, in the order tried.
    #[serde(default)]
    pub tried: Vec<String>,
}

/// The build and the inventory of a loaded WhatsApp Web page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhatsappInventory {
    /// `Debug.VERSION`, e.g. `2.3000.1017054665`.
    pub build: String,
    /// Every required internal was found.
    pub compatible: bool,
    /// Required internals not found (the session cannot work: `WHATSAPP_INCOMPATIBLE`).
    pub missing_required: Vec<String>,
    /// Optional internals not found: the features they serve are off.
    pub features_disabled: Vec<String>,
    /// `WhatsApp Web build X: compatible` / `... incompatible (missing: a, b)`.
    pub summary: String,
    pub internals: Vec<InternalLocation>,
}

impl WhatsappInventory {
    /// Builds the inventory (and its summary) from what the bridge reported.
    pub fn new(build: String, internals: Vec<InternalLocation>) -> Self {
        let missing = |required: bool| -> Vec<String> {
            internals
                .iter()
                .filter(|i| i.required == required && i.location.is_none())
                .map(|i| i.name.clone())
                .collect()
        };
        let missing_required = missing(true);
        let features_disabled = missing(false);
        let compatible = missing_required.is_empty();
        let mut summary = if compatible {
            format!("WhatsApp Web build {build}: compatible")
        } else {
            format!("WhatsApp Web build {build}: incompatible (missing: {})", missing_required.join(", "))
        };
        if compatible && !features_disabled.is_empty() {
            summary.push_str(&format!(" (disabled: {})", features_disabled.join(", ")));
        }
        WhatsappInventory { build, compatible, missing_required, features_disabled, summary, internals }
    }

    /// Whether the optional feature `name` (`pairing`, `acks`, ...) is available in this build.
    pub fn has_feature(&self, name: &str) -> bool {
        !self.features_disabled.iter().any(|f| f == name)
    }

    /// Where `name` resolved, if it did.
    pub fn location_of(&self, name: &str) -> Option<&str> {
        self.internals.iter().find(|i| i.name == name).and_then(|i| i.location.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn internal(name: &str, required: bool, location: Option<&str>) -> InternalLocation {
        InternalLocation {
            name: name.into(),
            group: if required { "login" } else { "pairing" }.into(),
            required,
            location: location.map(Into::into),
            tried: Vec::new(),
        }
    }

    #[test]
    fn a_missing_required_internal_makes_the_build_incompatible_and_is_named() {
        let inv = WhatsappInventory::new(
            "2.3000.1".into(),
            vec![internal("Socket", true, None), internal("Conn", true, Some("WAWebConnModel.Conn"))],
        );
        assert!(!inv.compatible);
        assert_eq!(inv.missing_required, ["Socket"]);
        assert_eq!(inv.summary, "WhatsApp Web build 2.3000.1: incompatible (missing: Socket)");
    }

    #[test]
    fn a_missing_optional_internal_only_disables_its_feature() {
        let inv = WhatsappInventory::new(
            "2.3000.1".into(),
            vec![internal("Socket", true, Some("WAWebSocketModel.Socket")), internal("pairing", false, None)],
        );
        assert!(inv.compatible);
        assert!(!inv.has_feature("pairing"));
        assert_eq!(inv.location_of("Socket"), Some("WAWebSocketModel.Socket"));
        assert_eq!(inv.summary, "WhatsApp Web build 2.3000.1: compatible (disabled: pairing)");
    }
}
