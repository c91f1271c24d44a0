//! Items as attribute maps: building them, reading typed values back (a missing or mistyped value is
//! [`StoreError::Corrupt`], naming the item and the attribute), and their size as DynamoDB counts it.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use cadre_domain::ports::store::StoreError;
use std::collections::HashMap;

use super::{PARTITION_KEY, SORT_KEY};

/// One item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// Builds an item attribute by attribute.
#[derive(Debug, Default, Clone)]
pub(crate) struct ItemBuilder(Item);

impl ItemBuilder {
    /// An item with its primary key.
    pub(crate) fn new(pk: &str, sk: &str) -> ItemBuilder {
        ItemBuilder(key(pk, sk))
    }

    pub(crate) fn s(mut self, name: &str, value: &str) -> ItemBuilder {
        self.0.insert(name.to_owned(), AttributeValue::S(value.to_owned()));
        self
    }

    pub(crate) fn n(mut self, name: &str, value: impl ToString) -> ItemBuilder {
        self.0.insert(name.to_owned(), AttributeValue::N(value.to_string()));
        self
    }

    pub(crate) fn b(mut self, name: &str, value: &[u8]) -> ItemBuilder {
        self.0.insert(name.to_owned(), AttributeValue::B(Blob::new(value)));
        self
    }

    pub(crate) fn build(self) -> Item {
        self.0
    }
}

/// A primary key.
pub(crate) fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([
        (PARTITION_KEY.to_owned(), AttributeValue::S(pk.to_owned())),
        (SORT_KEY.to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

/// The item's size as DynamoDB counts it against its 400 KB limit: names plus values (numbers are
/// counted at their text length, an upper bound of DynamoDB's own encoding).
pub(crate) fn size(item: &Item) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
        AttributeValue::B(b) => b.as_ref().len(),
        _ => 1,
    }
}

/// Reads typed attributes of one item, naming it in errors.
pub(crate) struct Fields<'a> {
    item: &'a Item,
    what: &'a str,
}

impl<'a> Fields<'a> {
    /// `what` names the item in errors, e.g. "the task item of 0193…".
    pub(crate) fn new(item: &'a Item, what: &'a str) -> Fields<'a> {
        Fields { item, what }
    }

    fn corrupt(&self, name: &str, why: &str) -> StoreError {
        StoreError::Corrupt(format!("{} has {why} attribute {name}", self.what))
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.item.contains_key(name)
    }

    pub(crate) fn s(&self, name: &str) -> Result<&'a str, StoreError> {
        match self.item.get(name) {
            Some(AttributeValue::S(s)) => Ok(s),
            Some(_) => Err(self.corrupt(name, "a non-string")),
            None => Err(self.corrupt(name, "no")),
        }
    }

    pub(crate) fn u64(&self, name: &str) -> Result<u64, StoreError> {
        match self.item.get(name) {
            Some(AttributeValue::N(n)) => n.parse().map_err(|_| self.corrupt(name, "a bad number")),
            Some(_) => Err(self.corrupt(name, "a non-number")),
            None => Err(self.corrupt(name, "no")),
        }
    }

    pub(crate) fn i64(&self, name: &str) -> Result<i64, StoreError> {
        match self.item.get(name) {
            Some(AttributeValue::N(n)) => n.parse().map_err(|_| self.corrupt(name, "a bad number")),
            Some(_) => Err(self.corrupt(name, "a non-number")),
            None => Err(self.corrupt(name, "no")),
        }
    }

    pub(crate) fn b(&self, name: &str) -> Result<&'a [u8], StoreError> {
        match self.item.get(name) {
            Some(AttributeValue::B(b)) => Ok(b.as_ref()),
            Some(_) => Err(self.corrupt(name, "a non-binary")),
            None => Err(self.corrupt(name, "no")),
        }
    }

    /// A JSON string attribute, decoded.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, StoreError> {
        let text = self.s(name)?;
        serde_json::from_str(text).map_err(|e| {
            StoreError::Corrupt(format!("{} has an undecodable {name}: {e}", self.what))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_was_built_and_names_what_is_wrong() {
        let item =
            ItemBuilder::new("task#1", "task").s("a", "x").n("n", 42).b("b", b"\0\xff").build();
        let fields = Fields::new(&item, "the task item of 1");
        assert_eq!(fields.s("a").unwrap(), "x");
        assert_eq!((fields.u64("n").unwrap(), fields.i64("n").unwrap()), (42, 42));
        assert_eq!(fields.b("b").unwrap(), b"\0\xff");
        assert_eq!(fields.s("pk").unwrap(), "task#1");
        let missing = fields.s("gone").unwrap_err().to_string();
        assert!(missing.contains("the task item of 1 has no attribute gone"), "{missing}");
        let mistyped = fields.u64("a").unwrap_err().to_string();
        assert!(mistyped.contains("a non-number attribute a"), "{mistyped}");
        assert!(fields.json::<u32>("a").is_err());
        assert_eq!(size(&item), (2 + 6) + (2 + 4) + (1 + 1) + (1 + 2) + (1 + 2));
    }
}
