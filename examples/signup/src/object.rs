//! JSON bodies that must be objects.
//!
//! serde's derived `Deserialize` of a struct accepts a JSON object *and* an array of the
//! fields in declaration order, so `Json<EmailBody>` takes `["a@example.test"]` as
//! `{"email": "a@example.test"}`. `#[serde(deny_unknown_fields)]` does not change that (an
//! array has no field names to check). [`Object`] asks the deserializer for a map, so any
//! other JSON value is a data error, which `Json` answers with `422`.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// `T` read from a JSON object only: `Json<Object<EmailBody>>`.
#[derive(Debug)]
pub(crate) struct Object<T>(pub(crate) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Accepts a map and hands its entries to `T`, as if `T` had been asked for one.
        struct MapOnly<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for MapOnly<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(MapOnly(PhantomData))
            .map(Object)
    }
}

#[cfg(test)]
mod tests {
    use super::Object;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body {
        email: String,
    }

    #[test]
    fn only_objects_are_accepted() {
        let Object(body) =
            serde_json::from_str::<Object<Body>>(r#"{"email":"a@example.test"}"#).expect("object");
        assert_eq!(body.email, "a@example.test");
        // The trap: the derived implementation alone takes an array, even with
        // `deny_unknown_fields`.
        assert!(serde_json::from_str::<Body>(r#"["a@example.test"]"#).is_ok());
        for not_an_object in [
            r#"["a@example.test"]"#,
            "[]",
            r#""a@example.test""#,
            "42",
            "null",
        ] {
            let error =
                serde_json::from_str::<Object<Body>>(not_an_object).expect_err(not_an_object);
            assert!(error.is_data(), "{not_an_object}: {error}");
        }
        // Errors inside the object are still the struct's own.
        let error = serde_json::from_str::<Object<Body>>(r#"{"mail":"a@example.test"}"#)
            .expect_err("unknown field");
        assert!(
            error.to_string().contains("unknown field `mail`"),
            "{error}"
        );
    }
}
