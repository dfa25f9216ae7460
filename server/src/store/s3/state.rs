//! What an unfinished S3 object needs to be continued by any instance, saved in the database
//! with the offset it belongs to (`uploads.store_state`).
//!
//! The object's stored bytes are, in order: the completed parts (each exactly the plan's part
//! size), then the pending pieces (small objects holding whole sealed segments that do not
//! fill a part yet). Nothing else counts, so the committed offset always equals
//! `parts × part_bytes + Σ pending`.

use serde::{Deserialize, Serialize};

use super::plan::PartPlan;
use crate::store::StoreError;

/// Version of this encoding, so a later one can be told apart.
const VERSION: u8 = 1;

/// A pending piece: whole sealed segments of the part being filled, written when a commit
/// came before the part was full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPiece {
    /// Object key of the piece.
    pub key: String,
    /// Its length in stored bytes.
    pub len: u64,
}

/// The saved state of one multipart object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartState {
    /// Encoding version.
    pub v: u8,
    /// Stored segments per part, fixed at the first write.
    pub segments_per_part: u64,
    /// The multipart upload, created when the first part is full.
    pub upload_id: Option<String>,
    /// ETags of parts 1..=n, in order.
    pub parts: Vec<String>,
    /// Pending pieces of part n + 1, in order.
    pub pending: Vec<PendingPiece>,
    /// Set when the multipart upload was already completed (the object holds this many
    /// stored bytes) but the database never recorded the upload complete: resuming then
    /// checks the bytes sent again against the object (`ObjectWriter::completed_len`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_len: Option<u64>,
}

impl MultipartState {
    /// The state of an object nothing has been written to yet.
    pub fn new(plan: PartPlan) -> Self {
        MultipartState {
            v: VERSION,
            segments_per_part: plan.segments_per_part(),
            upload_id: None,
            parts: Vec::new(),
            pending: Vec::new(),
            completed_len: None,
        }
    }

    /// Decodes a saved state and checks that it is self-consistent.
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let state: MultipartState = serde_json::from_slice(bytes)
            .map_err(|e| StoreError::State(format!("unreadable S3 upload state: {e}")))?;
        if state.v != VERSION {
            return Err(StoreError::State(format!(
                "S3 upload state version {} is not {VERSION}",
                state.v
            )));
        }
        if state.plan().is_none() {
            return Err(StoreError::State(format!(
                "S3 upload state has an invalid part size of {} segments",
                state.segments_per_part
            )));
        }
        if !state.parts.is_empty() && state.upload_id.is_none() {
            return Err(StoreError::State(
                "S3 upload state lists parts but no multipart upload".into(),
            ));
        }
        Ok(state)
    }

    /// Encodes the state for the database (JSON: small, and readable by an operator).
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(self)
            .map_err(|e| StoreError::State(format!("cannot encode S3 upload state: {e}")))
    }

    /// The part plan.
    pub fn plan(&self) -> Option<PartPlan> {
        PartPlan::from_segments_per_part(self.segments_per_part)
    }

    /// Stored bytes the state accounts for.
    pub fn stored_len(&self, plan: PartPlan) -> u64 {
        self.parts.len() as u64 * plan.part_bytes() + self.pending_len()
    }

    /// Stored bytes in pending pieces.
    pub fn pending_len(&self) -> u64 {
        self.pending.iter().map(|p| p.len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_accounts_for_every_byte() -> Result<(), StoreError> {
        let plan = PartPlan::for_len(1 << 30).map_err(|e| StoreError::State(e.to_string()))?;
        let mut state = MultipartState::new(plan);
        state.upload_id = Some("upload-1".into());
        state.parts = vec!["\"a\"".into(), "\"b\"".into()];
        state.pending = vec![
            PendingPiece {
                key: "pending/x/00003-1".into(),
                len: 65_564,
            },
            PendingPiece {
                key: "pending/x/00003-2".into(),
                len: 2 * 65_564,
            },
        ];
        let decoded = MultipartState::decode(&state.encode()?)?;
        assert_eq!(decoded, state);
        assert_eq!(decoded.stored_len(plan), 2 * plan.part_bytes() + 3 * 65_564);
        Ok(())
    }

    #[test]
    fn inconsistent_states_are_refused() {
        for bad in [
            &br#"{"v":2,"segments_per_part":1024,"upload_id":null,"parts":[],"pending":[]}"#[..],
            br#"{"v":1,"segments_per_part":7,"upload_id":null,"parts":[],"pending":[]}"#,
            br#"{"v":1,"segments_per_part":1024,"upload_id":null,"parts":["x"],"pending":[]}"#,
            b"not json",
        ] {
            assert!(MultipartState::decode(bad).is_err());
        }
    }
}
