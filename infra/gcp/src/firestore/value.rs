//! Firestore's typed values (`{"integerValue": "7"}`, `{"stringValue": …}`, `{"bytesValue": base64}`)
//! written and read for the few types Cadre stores. Structured data (tasks, events, envelopes) is
//! stored as JSON text in one string field, exactly as the SQLite store keeps it, so both stores
//! decode the same bytes with the same serde types.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::FsError;

/// The fields of a document to write.
#[derive(Debug, Default, Clone)]
pub(crate) struct Fields(Map<String, Value>);

impl Fields {
    pub(crate) fn new() -> Fields {
        Fields::default()
    }

    pub(crate) fn int(mut self, name: &str, value: i64) -> Fields {
        self.0.insert(name.to_owned(), json!({ "integerValue": value.to_string() }));
        self
    }

    pub(crate) fn uint(self, name: &str, value: u64) -> Fields {
        self.int(name, i64::try_from(value).unwrap_or(i64::MAX))
    }

    pub(crate) fn string(mut self, name: &str, value: &str) -> Fields {
        self.0.insert(name.to_owned(), json!({ "stringValue": value }));
        self
    }

    pub(crate) fn opt_string(mut self, name: &str, value: Option<&str>) -> Fields {
        let value = value.map_or(json!({ "nullValue": null }), |v| json!({ "stringValue": v }));
        self.0.insert(name.to_owned(), value);
        self
    }

    pub(crate) fn bool(mut self, name: &str, value: bool) -> Fields {
        self.0.insert(name.to_owned(), json!({ "booleanValue": value }));
        self
    }

    pub(crate) fn bytes(mut self, name: &str, value: &[u8]) -> Fields {
        self.0.insert(name.to_owned(), json!({ "bytesValue": STANDARD.encode(value) }));
        self
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }

    pub(crate) fn into_json(self) -> Value {
        Value::Object(self.0)
    }
}

/// A document as read.
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    /// The full name, `projects/…/documents/tasks/ID`.
    pub(crate) name: String,
    /// The version read, for an `updateTime` precondition.
    pub(crate) update_time: String,
    fields: Map<String, Value>,
}

impl Doc {
    pub(crate) fn from_json(doc: Value) -> Result<Doc, FsError> {
        let name = doc.get("name").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| {
            FsError::Corrupt("firestore returned a document without a name".into())
        })?;
        let fields = match doc.get("fields") {
            Some(Value::Object(fields)) => fields.clone(),
            _ => Map::new(),
        };
        let update_time =
            doc.get("updateTime").and_then(Value::as_str).unwrap_or_default().to_owned();
        Ok(Doc { name, update_time, fields })
    }

    /// The last segment of the name: the document's id.
    pub(crate) fn id(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or_default()
    }

    fn typed(&self, field: &str, kind: &str) -> Result<&Value, FsError> {
        self.fields.get(field).and_then(|v| v.get(kind)).ok_or_else(|| {
            FsError::Corrupt(format!(
                "document {} has no {kind} field `{field}`; it was not written by this Cadre",
                self.name
            ))
        })
    }

    pub(crate) fn int(&self, field: &str) -> Result<i64, FsError> {
        let value = self.typed(field, "integerValue")?;
        let parsed = match value {
            Value::String(text) => text.parse().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        parsed.ok_or_else(|| {
            FsError::Corrupt(format!("document {}: `{field}` is not an integer", self.name))
        })
    }

    pub(crate) fn uint(&self, field: &str) -> Result<u64, FsError> {
        let value = self.int(field)?;
        u64::try_from(value).map_err(|_| {
            FsError::Corrupt(format!("document {}: `{field}` is negative ({value})", self.name))
        })
    }

    pub(crate) fn string(&self, field: &str) -> Result<&str, FsError> {
        self.typed(field, "stringValue")?.as_str().ok_or_else(|| {
            FsError::Corrupt(format!("document {}: `{field}` is not a string", self.name))
        })
    }

    /// A string field that may be null or absent.
    pub(crate) fn opt_string(&self, field: &str) -> Option<&str> {
        self.fields.get(field).and_then(|v| v.get("stringValue")).and_then(Value::as_str)
    }

    pub(crate) fn bool(&self, field: &str) -> Result<bool, FsError> {
        self.typed(field, "booleanValue")?.as_bool().ok_or_else(|| {
            FsError::Corrupt(format!("document {}: `{field}` is not a boolean", self.name))
        })
    }

    pub(crate) fn bytes(&self, field: &str) -> Result<Vec<u8>, FsError> {
        let text = self.typed(field, "bytesValue")?.as_str().unwrap_or_default();
        STANDARD.decode(text).map_err(|_| {
            FsError::Corrupt(format!("document {}: `{field}` is not base64 bytes", self.name))
        })
    }

    pub(crate) fn has(&self, field: &str) -> bool {
        self.fields.contains_key(field)
    }

    /// A JSON text field decoded into `T`.
    pub(crate) fn decode<T: serde::de::DeserializeOwned>(&self, field: &str) -> Result<T, FsError> {
        serde_json::from_str(self.string(field)?).map_err(|e| {
            FsError::Corrupt(format!(
                "document {}: `{field}` cannot be decoded ({e}); it was written by another version",
                self.name
            ))
        })
    }
}

/// A typed integer value, for query filters.
pub(crate) fn int_value(value: i64) -> Value {
    json!({ "integerValue": value.to_string() })
}

/// A typed string value, for query filters.
pub(crate) fn string_value(value: &str) -> Value {
    json!({ "stringValue": value })
}

/// A document reference, for filters on `__name__`.
pub(crate) fn reference(name: &str) -> Value {
    json!({ "referenceValue": name })
}
