//! The holder's side: answer one query with one epoch.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use rand_core::CryptoRng;
use rayon::prelude::*;
use zeroize::{Zeroize, Zeroizing};

use super::HASH_MODE;
use super::labels::{
    CANARY_LABEL, LabelOffer, LabelPolicy, VALUES_PER_MESSAGE, apply_keystream, encode_slots,
};
use super::messages::{sections_valid, total};
use super::tag::Tag;
use super::{
    BlindedChunk, Epoch, EvaluatedChunk, HolderMessage, LabelValues, LimitExceeded,
    MAX_CHUNK_ELEMENTS, MAX_SET_SIZE, Misuse, PROTOCOL_VERSION, PeerMisbehaved, PreparedCount,
    PsiError, QuerierMessage, QueryAccept, QueryMode, QueryStart, Section, TagChunk, chunk_len,
    tag_len,
};
use crate::ident::KeyType;

/// Domain-separation tag of the proof nonces, `HashToScalar(seed || I2OSP(seq, 4))`.
pub const PROOF_NONCE_DST: &[u8] = b"suyuan-proof-nonce-v2";
use crate::oprf::{self, Element};

/// What a holder accepts from a querier (the node adds its policy on top).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HolderLimits {
    /// Most keys one query may declare. `count` mode buffers 32 bytes per key until the end,
    /// so the default of 2^27 bounds that at 4 GiB per query; the node's policy is stricter.
    pub max_query_keys: u64,
}

impl Default for HolderLimits {
    fn default() -> Self {
        HolderLimits {
            max_query_keys: 1 << 27,
        }
    }
}

/// A holder serving one epoch. Cheap to clone into every connection.
#[derive(Debug, Clone)]
pub struct Holder {
    epoch: Arc<Epoch>,
    limits: HolderLimits,
    /// Which labels queriers of this connection may see.
    label_policy: LabelPolicy,
}

impl Holder {
    /// A holder for `epoch` with default limits.
    pub fn new(epoch: Arc<Epoch>) -> Self {
        Self::with_limits(epoch, HolderLimits::default())
    }

    /// A holder for `epoch` with explicit limits.
    pub fn with_limits(epoch: Arc<Epoch>, limits: HolderLimits) -> Self {
        Holder {
            epoch,
            limits,
            label_policy: LabelPolicy::default(),
        }
    }

    /// The same holder showing the labels `policy` allows (none by default) to queriers that
    /// ask for them: a node sets it per connection, from the querier's role.
    pub fn with_label_policy(mut self, policy: LabelPolicy) -> Self {
        self.label_policy = policy;
        self
    }

    /// The epoch served.
    pub fn epoch(&self) -> &Arc<Epoch> {
        &self.epoch
    }

    /// Takes the querier's [`QueryStart`]: checks its version, sections and size, and answers
    /// with the [`QueryAccept`] to send first and the session that streams the rest. A `count`
    /// session is prepared here, with a fresh factor drawn from `rng` (one multiplication per
    /// key of the epoch; [`Holder::handle_start_prepared`] takes one prepared ahead).
    pub fn handle_start(
        &self,
        start: QueryStart,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<(QueryAccept, HolderSession), PsiError> {
        self.check_start(&start)?;
        let prepared = match start.mode {
            QueryMode::Count => Some(PreparedCount::prepare(&self.epoch, rng)?),
            QueryMode::Matches => None,
        };
        Ok(self.open(start, prepared, rng))
    }

    /// [`Holder::handle_start`] with a count session prepared ahead from this epoch. In
    /// `matches` mode, which evaluates under the epoch's key, it is dropped unused.
    pub fn handle_start_prepared(
        &self,
        start: QueryStart,
        prepared: PreparedCount,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<(QueryAccept, HolderSession), PsiError> {
        if prepared.epoch() != self.epoch.id() {
            return Err(Misuse::PreparedForAnotherEpoch.into());
        }
        self.check_start(&start)?;
        let prepared = (start.mode == QueryMode::Count).then_some(prepared);
        Ok(self.open(start, prepared, rng))
    }

    /// The checks of [`Holder::handle_start`] alone (version, sections, size): a driver runs
    /// them before it spends a prepared count session on a start.
    pub fn check_start(&self, start: &QueryStart) -> Result<(), PsiError> {
        if start.version != PROTOCOL_VERSION {
            return Err(PeerMisbehaved::UnsupportedVersion {
                got: start.version,
                supported: PROTOCOL_VERSION,
            }
            .into());
        }
        if !sections_valid(&start.sections, true) {
            return Err(PeerMisbehaved::BadSections.into());
        }
        let n = start.total_keys();
        let max = self.limits.max_query_keys.min(MAX_SET_SIZE);
        if n > max {
            return Err(LimitExceeded::QueryTooLarge { keys: n, max }.into());
        }
        Ok(())
    }

    /// The accept and the session; a `matches` session draws its proof-nonce seed from `rng`.
    fn open(
        &self,
        start: QueryStart,
        count: Option<PreparedCount>,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> (QueryAccept, HolderSession) {
        let proof_seed = (start.mode == QueryMode::Matches).then(|| {
            let mut seed = Zeroizing::new([0u8; 32]);
            rng.fill_bytes(seed.as_mut());
            seed
        });
        let n = start.total_keys();
        let holder_sections: Vec<Section> = start
            .sections
            .iter()
            .map(|s| Section {
                key_type: s.key_type,
                count: self.epoch.size(s.key_type),
            })
            .collect();
        let l = tag_len(n, total(&holder_sections));
        let labels = if start.labels {
            self.label_session(rng, &holder_sections)
        } else {
            None
        };
        let accept = QueryAccept {
            version: PROTOCOL_VERSION,
            epoch: self.epoch.id(),
            tag_len: l as u8,
            public_key: self.epoch.key().public_key().to_element(),
            holder_sections: holder_sections.clone(),
            labels: labels.as_ref().map(|s| s.offer.clone()),
        };
        let session = HolderSession {
            epoch: Arc::clone(&self.epoch),
            count,
            proof_seed,
            mode: start.mode,
            query_sections: start.sections,
            holder_sections,
            tag_len: l,
            tag_cursor: (0, 0),
            next_seq: 0,
            received: 0,
            total: n,
            outbox: VecDeque::new(),
            count_buffer: match start.mode {
                QueryMode::Count => whole_buffer(n),
                QueryMode::Matches => Vec::new(),
            },
            count_cursor: None,
            next_out_seq: 0,
            labels,
        };
        (accept, session)
    }

    /// The offer of this policy and the session's sealing state; `None` if the epoch has no
    /// labels or the policy shows none of them.
    fn label_session(
        &self,
        rng: &mut (impl CryptoRng + ?Sized),
        sections: &[Section],
    ) -> Option<SessionLabels> {
        let labels = self.epoch.labels()?;
        let value_keys = self.epoch.value_keys()?;
        let offered: Vec<u8> = (0..labels.specs.len() as u8)
            .filter(|l| {
                let name = &labels.specs[usize::from(*l)].name;
                // Canaries are nobody: their export is shown to whoever asks for labels.
                name == CANARY_LABEL || self.label_policy.visible.contains(name)
            })
            .collect();
        if offered.is_empty() {
            return None;
        }
        let min_cell = self.label_policy.min_cell;
        let rare: Vec<Vec<bool>> = offered
            .iter()
            .map(|l| {
                let canary = labels.specs[usize::from(*l)].name == CANARY_LABEL;
                value_keys.all[usize::from(*l)]
                    .iter()
                    .map(|n| !canary && *n < min_cell)
                    .collect()
            })
            .collect();
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let share = self.label_policy.share_totals;
        let mut preamble = VecDeque::new();
        for (o, l) in offered.iter().enumerate() {
            let li = usize::from(*l);
            for (c, values) in labels.values[li].chunks(VALUES_PER_MESSAGE).enumerate() {
                // Per value, per queried key type: its keys of that type (none for a rare one).
                let (rare, value_keys) = (&rare, &value_keys);
                let totals = match share {
                    false => Vec::new(),
                    true => (0..values.len())
                        .flat_map(|i| {
                            let v = c * VALUES_PER_MESSAGE + i;
                            sections.iter().map(move |s| match rare[o][v] {
                                true => 0,
                                false => {
                                    value_keys.per_type.get(&s.key_type).map_or(0, |t| t[li][v])
                                }
                            })
                        })
                        .collect(),
                };
                preamble.push_back(HolderMessage::LabelValues(LabelValues {
                    label: o as u8,
                    values: values.to_vec(),
                    totals,
                }));
            }
        }
        let offer = LabelOffer {
            specs: offered
                .iter()
                .map(|l| labels.specs[usize::from(*l)].clone())
                .collect(),
            value_counts: offered
                .iter()
                .map(|l| labels.values[usize::from(*l)].len() as u32)
                .collect(),
            min_cell,
            totals: share,
            nonce,
        };
        Some(SessionLabels {
            offer,
            offered,
            rare,
            preamble,
        })
    }
}

/// Per label and value, the keys carrying it: per key type, and over all types.
#[derive(Debug)]
/// A session's labels: the offer sent, which epoch labels it covers, which of their values
/// are too rare to show, and the value messages still to send before the tags.
struct SessionLabels {
    offer: LabelOffer,
    offered: Vec<u8>,
    rare: Vec<Vec<bool>>,
    preamble: VecDeque<HolderMessage>,
}

/// One query being answered (its [`QueryAccept`] already handed out): feed it [`QuerierMessage`]s with [`HolderSession::handle`], send
/// what [`HolderSession::poll_message`] returns, until [`HolderSession::is_finished`].
pub struct HolderSession {
    epoch: Arc<Epoch>,
    /// `count` mode: this session's key and tags.
    count: Option<PreparedCount>,
    /// `matches` mode: the secret seed each chunk's proof nonce is derived from.
    proof_seed: Option<Zeroizing<[u8; 32]>>,
    mode: QueryMode,
    query_sections: Vec<Section>,
    holder_sections: Vec<Section>,
    tag_len: usize,
    /// (section, tags already sent in it)
    tag_cursor: (usize, usize),
    next_seq: u32,
    received: u64,
    total: u64,
    outbox: VecDeque<HolderMessage>,
    /// `count` mode: every evaluation until the last chunk, then sorted per section.
    count_buffer: Vec<Element>,
    /// `count` mode, once every chunk is in: where the next evaluated chunk starts.
    count_cursor: Option<usize>,
    next_out_seq: u32,
    /// With a label offer: its sealing state.
    labels: Option<SessionLabels>,
}

/// Room for a count session's `n` evaluations (`n` within the holder's limits), taken at once:
/// a buffer grown by doubling holds the old and the new allocation together at each step, 1.5
/// times the final size at the last (a 2×10^7-key query: 1.6 GB instead of 640 MB). Pages are
/// touched only as evaluations arrive; if the room cannot be had, the buffer grows as it goes.
fn whole_buffer(n: u64) -> Vec<Element> {
    let mut buffer = Vec::new();
    let _ = usize::try_from(n).map(|n| buffer.try_reserve_exact(n));
    buffer
}

impl fmt::Debug for HolderSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HolderSession")
            .field("mode", &self.mode)
            .field("received", &self.received)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl HolderSession {
    /// The mode asked for.
    pub fn mode(&self) -> QueryMode {
        self.mode
    }

    /// The query's sections (distinct keys per type).
    pub fn query_sections(&self) -> &[Section] {
        &self.query_sections
    }

    /// Elements declared by the query.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Takes one querier message after the start: a blinded chunk, evaluated at once (in
    /// parallel). Anything else, or anything beyond the declared total, is refused.
    pub fn handle(&mut self, msg: QuerierMessage) -> Result<(), PsiError> {
        match msg {
            QuerierMessage::Blinded(chunk) => self.handle_blinded(chunk),
            other => Err(PeerMisbehaved::UnexpectedMessage {
                expected: if self.received < self.total {
                    "BlindedChunk"
                } else {
                    "end of stream"
                },
                got: other.name(),
            }
            .into()),
        }
    }

    fn handle_blinded(&mut self, chunk: BlindedChunk) -> Result<(), PsiError> {
        let len = self.check_blinded(&chunk)?;
        let raw: Vec<[u8; 32]> = chunk.elements.iter().map(|e| e.0).collect();
        let key = self
            .count
            .as_ref()
            .map_or(&self.epoch.key().0, PreparedCount::key);
        let invalid = |i: usize| PeerMisbehaved::InvalidElement {
            index: self.received + i as u64,
        };
        // Matches mode proves the chunk: keep the decoded blinded points for the proof.
        let (evaluated, blinded_points) = match self.mode {
            QueryMode::Matches => oprf::evaluate_batch_keeping(key, &raw).map_err(invalid)?,
            QueryMode::Count => (
                oprf::evaluate_batch(key, &raw).map_err(invalid)?,
                oprf::Kept::empty(),
            ),
        };
        self.received += len as u64;
        self.next_seq += 1;
        let elements = evaluated.into_iter().map(Element);
        match self.mode {
            QueryMode::Matches => {
                let elements: Vec<Element> = elements.collect();
                let proof = self.prove(chunk.seq, &chunk.elements, &blinded_points, &elements)?;
                self.outbox
                    .push_back(HolderMessage::Evaluated(EvaluatedChunk {
                        seq: chunk.seq,
                        elements,
                        proof: Some(proof),
                    }))
            }
            QueryMode::Count => {
                self.count_buffer.extend(elements);
                if self.received == self.total {
                    self.release_count();
                }
            }
        }
        Ok(())
    }

    /// The batched DLEQ proof of one chunk, its nonce derived from the session's seed and the
    /// chunk's number (so never reused within the session, and fresh in every session).
    fn prove(
        &self,
        seq: u32,
        blinded: &[Element],
        blinded_points: &oprf::Kept,
        evaluated: &[Element],
    ) -> Result<oprf::Proof, PsiError> {
        let seed = self
            .proof_seed
            .as_ref()
            .ok_or(Misuse::Incomplete("no proof seed in a matches session"))?;
        let mut nonce =
            oprf::hash_to_scalar_with_dst(&[seed.as_slice(), &seq.to_be_bytes()], PROOF_NONCE_DST)?;
        let proof = oprf::generate_proof_with_nonce(
            HASH_MODE,
            self.epoch.key(),
            blinded,
            Some(blinded_points),
            evaluated,
            &nonce,
        );
        nonce.zeroize();
        Ok(proof?)
    }

    /// Checks a blinded chunk against the declared total and the sequence; returns its length.
    fn check_blinded(&self, chunk: &BlindedChunk) -> Result<usize, PsiError> {
        if self.received >= self.total {
            return Err(PeerMisbehaved::TooManyElements {
                declared: self.total,
            }
            .into());
        }
        if chunk.seq != self.next_seq {
            return Err(PeerMisbehaved::ChunkOutOfOrder {
                expected: self.next_seq,
                got: chunk.seq,
            }
            .into());
        }
        let len = chunk.elements.len();
        if len == 0 || len > MAX_CHUNK_ELEMENTS {
            return Err(PeerMisbehaved::BadChunkSize {
                len,
                max: MAX_CHUNK_ELEMENTS,
            }
            .into());
        }
        let expected = chunk_len(self.total, u64::from(chunk.seq));
        if len as u64 != expected {
            return Err(PeerMisbehaved::WrongChunkLength {
                seq: chunk.seq,
                expected,
                got: len as u64,
            }
            .into());
        }
        Ok(len)
    }

    /// Sorts each section's evaluations (a canonical order: the querier learns the multiset,
    /// exactly what a uniform shuffle would reveal, and nothing about positions) and queues them.
    fn release_count(&mut self) {
        let mut start = 0usize;
        for s in &self.query_sections {
            let end = start + s.count as usize;
            self.count_buffer[start..end].par_sort_unstable();
            start = end;
        }
        self.count_cursor = Some(0);
    }

    /// `count` mode: the next chunk of the sorted evaluations, copied out one at a time (so
    /// the session holds one buffer, not a second copy of it in messages); the buffer is
    /// freed with the last chunk.
    fn next_count_chunk(&mut self) -> Option<HolderMessage> {
        let start = self.count_cursor?;
        if start >= self.count_buffer.len() {
            self.count_cursor = None;
            self.count_buffer = Vec::new();
            return None;
        }
        let end = (start + MAX_CHUNK_ELEMENTS).min(self.count_buffer.len());
        let chunk = HolderMessage::Evaluated(EvaluatedChunk {
            seq: self.next_out_seq,
            elements: self.count_buffer[start..end].to_vec(),
            proof: None,
        });
        self.next_out_seq += 1;
        self.count_cursor = Some(end);
        Some(chunk)
    }

    /// The next message to send after the accept: every tag chunk, then evaluations as they
    /// become ready. `Ok(None)` means nothing is ready now (or everything is sent); an error is
    /// the epoch's store failing to give its tags, which ends the session.
    pub fn poll_message(&mut self) -> Result<Option<HolderMessage>, PsiError> {
        if let Some(v) = self.labels.as_mut().and_then(|l| l.preamble.pop_front()) {
            return Ok(Some(v));
        }
        if let Some(t) = self.next_tag_chunk()? {
            return Ok(Some(t));
        }
        if let Some(e) = self.next_count_chunk() {
            return Ok(Some(e));
        }
        Ok(self.outbox.pop_front())
    }

    fn next_tag_chunk(&mut self) -> Result<Option<HolderMessage>, PsiError> {
        loop {
            let (section, sent) = self.tag_cursor;
            let Some(s) = self.holder_sections.get(section) else {
                return Ok(None);
            };
            let (kt, total) = (s.key_type, s.count as usize);
            if sent >= total {
                self.tag_cursor = (section + 1, 0);
                continue;
            }
            let end = (sent + MAX_CHUNK_ELEMENTS).min(total);
            let mut bytes = Vec::with_capacity((end - sent) * self.tag_len);
            let mut put = |tags: &[Tag]| {
                for t in tags {
                    bytes.extend_from_slice(&t[..self.tag_len]);
                }
            };
            match &self.count {
                Some(c) => put(&c.read_tags(kt, sent..end)?),
                None => put(&self.epoch.read_tags(kt, sent as u64..end as u64)?),
            }
            self.tag_cursor = (section, end);
            let labels = self.seal_labels(kt, sent..end);
            return Ok(Some(HolderMessage::Tags(TagChunk {
                key_type: kt,
                tags: bytes,
                labels,
            })));
        }
    }

    /// The sealed labels of the keys behind tags `range` of one type (empty without an offer):
    /// each key's slots, XORed with its label key's keystream under the session's nonce. In
    /// `count` mode the label keys are the session's own and follow the session's sort.
    fn seal_labels(&self, kt: KeyType, range: std::ops::Range<usize>) -> Vec<u8> {
        let (Some(sl), Some(labels)) = (&self.labels, self.epoch.labels()) else {
            return Vec::new();
        };
        let Some(per_type) = labels.per_type.get(&kt) else {
            return Vec::new();
        };
        let w = sl.offer.sealed_len();
        let mut out = vec![0u8; range.len() * w];
        out.par_chunks_mut(w)
            .zip(range.into_par_iter())
            .for_each(|(buf, i)| {
                let (key, index) = match &self.count {
                    Some(c) => match c.label_of(kt, i) {
                        Some((k, idx)) => (k, *idx as usize),
                        None => return,
                    },
                    None => (&per_type.keys[i], i),
                };
                encode_slots(per_type.of(index), &sl.offered, &sl.rare, buf);
                apply_keystream(key, &sl.offer.nonce, buf);
            });
        out
    }

    /// ℓ, the tag length of this session.
    pub fn tag_len(&self) -> u8 {
        self.tag_len as u8
    }

    /// The querier already holds this epoch's tags (it proved so with their digest, see
    /// [`crate::psi::TagSet`]): send none. Only before the first tag chunk was handed out.
    pub fn skip_tags(&mut self) -> Result<(), PsiError> {
        if self.count.is_some() {
            return Err(Misuse::NoKeptTagsInCountMode.into());
        }
        if self.tag_cursor != (0, 0) {
            return Err(Misuse::TagSetMismatch.into());
        }
        self.tag_cursor = (self.holder_sections.len(), 0);
        Ok(())
    }

    /// Every chunk received and every message handed out.
    pub fn is_finished(&self) -> bool {
        self.tag_cursor.0 >= self.holder_sections.len()
            && self.received == self.total
            && self.outbox.is_empty()
            && self
                .count_cursor
                .is_none_or(|c| c >= self.count_buffer.len())
    }
}
