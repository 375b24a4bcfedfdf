//! What a plugin decides for a record.

use crate::Record;

/// Why a record is refused: a code for machines, the field, a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Machine-readable code in snake_case (`invalid_email`).
    pub code: String,
    /// The field at fault, if one is.
    pub field: Option<String>,
    /// A message a person can act on.
    pub message: String,
}

/// The outcome of processing one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<'a> {
    /// Keep the record (with any changes made to it).
    Keep,
    /// Replace the record by these records (none, one or many).
    Emit(Vec<Record<'a>>),
    /// Filter the record out on purpose (counted as dropped).
    Drop,
    /// Refuse the record: it goes to the dead-letter sink.
    Reject(Rejection),
}

impl Outcome<'_> {
    /// Rejects the record as a whole.
    pub fn reject(code: impl Into<String>, message: impl Into<String>) -> Self {
        Outcome::Reject(Rejection {
            code: code.into(),
            field: None,
            message: message.into(),
        })
    }

    /// Rejects the record because of one field.
    pub fn reject_field(
        code: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Outcome::Reject(Rejection {
            code: code.into(),
            field: Some(field.into()),
            message: message.into(),
        })
    }
}
