//! The common surface of the string newtypes validated at the border: `as_str`, `Display`,
//! `AsRef<str>`, `Serialize` as a plain JSON string, `FromStr` and `into String`, and
//! `TryFrom<String>` (what `#[serde(try_from = "String")]` deserializes through) from the type's own
//! `parse`, which takes the `String`, a `&str` or the bytes, as the invocation says.

macro_rules! string_newtype {
    ($name:ident, parse(String)) => {
        $crate::newtype::string_newtype!($name, |raw| $name::parse(raw));
    };
    ($name:ident, parse(&str)) => {
        $crate::newtype::string_newtype!($name, |raw| $name::parse(&raw));
    };
    ($name:ident, parse(&[u8])) => {
        $crate::newtype::string_newtype!($name, |raw| $name::parse(raw.as_bytes()));
    };
    ($name:ident, |$raw:ident| $parse:expr) => {
        impl ::std::convert::TryFrom<String> for $name {
            type Error = String;

            fn try_from($raw: String) -> Result<Self, String> {
                $parse
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::std::convert::AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        /// Parses as `TryFrom<String>` does (command-line arguments use it).
        impl ::std::str::FromStr for $name {
            type Err = String;

            fn from_str(raw: &str) -> Result<Self, String> {
                Self::try_from(raw.to_owned())
            }
        }

        impl ::std::convert::From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

pub(crate) use string_newtype;
