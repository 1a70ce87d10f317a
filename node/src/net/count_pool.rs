//! Count sessions prepared while the node is idle. Each `count` session needs its own factor
//! `r` and the tags of `r·k·H(y)` for the whole customer list, one multiplication per key;
//! prepared ahead, a count query starts as fast as a `matches` one. Each prepared session is
//! taken once and dropped (its key `r·k` zeroized); none is ever used twice. A list whose
//! session does not fit the pool's memory bound (1.6 GB at 10^8 keys) has its sessions
//! prepared to disk instead ([`crate::net::count_disk`]), under a bound of their own.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use suyuan_protocol::psi::{Epoch, EpochId, PreparedCount};

/// Most sessions kept ready, whatever the memory bound allows: enough for a burst of queries.
pub const MAX_PREPARED: usize = 16;

/// Sessions prepared in one pass over the epoch: each stored point is decompressed once for
/// all of them, so a session costs little more than its multiplication per key (1.41× that
/// alone, 1.1× in a pass of eight). The pool refills when a whole pass fits.
pub const PREPARE_BATCH: usize = 8;

/// How often the filler looks again whether the node is idle.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Where sessions too large for the memory bound are prepared, and how many bytes of them.
#[derive(Debug, Clone)]
pub struct DiskPool {
    /// `NODE_DIR/count-sessions`.
    pub dir: PathBuf,
    /// Most bytes of sessions there.
    pub limit_bytes: u64,
}

/// Where a pass prepares its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Memory,
    Disk,
}

/// A bounded pool of prepared count sessions for the epoch being served.
pub struct CountPool {
    limit_bytes: u64,
    disk: Option<DiskPool>,
    state: Mutex<PoolState>,
    changed: Condvar,
}

#[derive(Default)]
struct PoolState {
    epoch: Option<Arc<Epoch>>,
    ready: VecDeque<PreparedCount>,
    stopped: bool,
    prepared: u64,
}

/// What the pool holds now, for logs and `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLevel {
    /// Sessions ready.
    pub ready: usize,
    /// Bytes they take, in memory and on disk.
    pub bytes: u64,
    /// Of those sessions, the ones on disk.
    pub on_disk: usize,
    /// Sessions prepared since the node started.
    pub prepared: u64,
}

impl CountPool {
    /// An empty pool holding at most `limit_bytes` of prepared tags in memory (0: none), and,
    /// for a list whose session does not fit that, sessions on `disk` (`None`: none).
    pub fn new(limit_bytes: u64, disk: Option<DiskPool>) -> Arc<Self> {
        Arc::new(CountPool {
            limit_bytes,
            disk,
            state: Mutex::new(PoolState::default()),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The epoch now served: sessions of any other are dropped at once.
    pub fn serve(&self, epoch: Option<Arc<Epoch>>) {
        let mut s = self.lock();
        let same = match (&s.epoch, &epoch) {
            (Some(a), Some(b)) => a.id() == b.id(),
            (None, None) => true,
            _ => false,
        };
        if !same {
            s.ready.clear();
            s.epoch = epoch;
            self.changed.notify_all();
        }
    }

    /// A prepared session of `epoch`, if one is ready; it is the caller's alone.
    pub fn take(&self, epoch: EpochId) -> Option<PreparedCount> {
        let mut s = self.lock();
        let p = s.ready.pop_front()?;
        self.changed.notify_all();
        (p.epoch() == epoch).then_some(p)
    }

    /// What the pool holds.
    pub fn level(&self) -> PoolLevel {
        let s = self.lock();
        PoolLevel {
            ready: s.ready.len(),
            bytes: s.ready.iter().map(PreparedCount::size_bytes).sum(),
            on_disk: s.ready.iter().filter(|p| p.is_outside()).count(),
            prepared: s.prepared,
        }
    }

    /// Stops the filler; the sessions held are dropped.
    pub fn stop(&self) {
        let mut s = self.lock();
        s.stopped = true;
        s.ready.clear();
        self.changed.notify_all();
    }

    /// The epoch to prepare sessions of, how many and where, when a whole pass fits: as many
    /// as the bound holds ([`MAX_PREPARED`], `limit_bytes`, or the disk's when not even one
    /// session fits in memory and the epoch has no labels), [`PREPARE_BATCH`] at a time, and
    /// nothing while fewer than a pass's worth are missing.
    fn wanted(&self, s: &PoolState) -> Option<(Arc<Epoch>, usize, Place)> {
        let epoch = s.epoch.as_ref()?;
        let size = PreparedCount::size_of(epoch).max(1);
        let fits = |limit: u64| {
            usize::try_from(limit / size)
                .unwrap_or(usize::MAX)
                .min(MAX_PREPARED)
        };
        let (capacity, place) = match &self.disk {
            Some(d) if fits(self.limit_bytes) == 0 && epoch.labels().is_none() => {
                (fits(d.limit_bytes), Place::Disk)
            }
            _ => (fits(self.limit_bytes), Place::Memory),
        };
        let room = capacity.saturating_sub(s.ready.len());
        let pass = capacity.min(PREPARE_BATCH);
        (pass > 0 && room >= pass).then(|| (Arc::clone(epoch), pass, place))
    }

    /// Prepares sessions whenever a pass fits and `idle()` says no query is running, until
    /// [`CountPool::stop`]. Runs on a thread of its own; the curve work runs on rayon's pool.
    pub fn fill(self: &Arc<Self>, idle: impl Fn() -> bool) {
        let mut full_logged = None;
        loop {
            let (epoch, sessions, place) = {
                let s = self.lock();
                if s.stopped {
                    return;
                }
                let wanted = self.wanted(&s);
                if wanted.is_none() {
                    log_full(&s, &mut full_logged);
                }
                match wanted.filter(|_| idle()) {
                    Some(e) => e,
                    None => {
                        drop(self.changed.wait_timeout(s, IDLE_POLL));
                        continue;
                    }
                }
            };
            // Given up as soon as a query arrives: the query gets the cores, the work is redone
            // at the next idle moment.
            let started = std::time::Instant::now();
            let pass = match (place, &self.disk) {
                (Place::Disk, Some(d)) => {
                    crate::net::count_disk::prepare(&epoch, sessions, &d.dir, &idle)
                }
                _ => PreparedCount::prepare_many_while(&epoch, sessions, &mut rand::rng(), &idle)
                    .map_err(anyhow::Error::from),
            };
            let prepared = match pass {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(e) => {
                    // A store that passed its digest check has no bad point, so this is damage
                    // in memory, or a disk that fails. Count queries then prepare their own.
                    tracing::error!("cannot prepare count sessions: {e:#}");
                    return;
                }
            };
            tracing::info!(
                sessions = prepared.len(),
                on_disk = place == Place::Disk,
                seconds = started.elapsed().as_secs_f64(),
                "count sessions prepared"
            );
            let mut s = self.lock();
            if s.epoch.as_ref().map(|e| e.id()) == Some(epoch.id()) && !s.stopped {
                s.prepared += prepared.len() as u64;
                s.ready.extend(prepared);
                full_logged = None;
                tracing::info!(ready = s.ready.len(), "count sessions ready");
            }
        }
    }
}

/// Logs once per filling that the pool wants no more sessions of its epoch (also at once when
/// its bound holds none): `suyuan bench` waits for this line, so no pass runs beside its query.
fn log_full(s: &PoolState, logged: &mut Option<EpochId>) {
    let id = s.epoch.as_ref().map(|e| e.id());
    if id.is_some() && *logged != id {
        tracing::info!(ready = s.ready.len(), "the pool of count sessions is full");
        *logged = id;
    }
}

#[cfg(test)]
mod tests {
    use suyuan_protocol::ident::{Key, KeyType};
    use suyuan_protocol::psi::EpochBuilder;

    use super::*;

    fn epoch(n: u32) -> Arc<Epoch> {
        let mut b = EpochBuilder::new(&mut rand::rng());
        let keys: Vec<Key> = (0..n)
            .map(|i| Key::parse(KeyType::Mobile, &format!("138{i:08}")).unwrap())
            .collect();
        b.add(&keys);
        Arc::new(b.finish())
    }

    fn filled(pool: &Arc<CountPool>, idle: bool) -> std::thread::JoinHandle<()> {
        let p = Arc::clone(pool);
        std::thread::spawn(move || p.fill(move || idle))
    }

    fn wait_for(pool: &CountPool, ready: usize) {
        for _ in 0..500 {
            if pool.level().ready >= ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the pool never held {ready}: {:?}", pool.level());
    }

    #[test]
    fn the_pool_fills_to_its_bound_and_each_session_is_taken_once() {
        let e = epoch(100);
        // Room for three sessions of 100 tags of 16 bytes: one pass of three.
        let pool = CountPool::new(3 * 1600 + 10, None);
        let filler = filled(&pool, true);
        pool.serve(Some(Arc::clone(&e)));
        wait_for(&pool, 3);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(pool.level().ready, 3, "never above its bound");
        assert_eq!(pool.level().bytes, 3 * 1600);
        for _ in 0..3 {
            let taken = pool.take(e.id()).unwrap();
            assert_eq!(taken.size_bytes(), 1600);
        }
        wait_for(&pool, 3);
        assert_eq!(pool.level().prepared, 6);
        pool.stop();
        filler.join().unwrap();
        assert_eq!(pool.level().ready, 0);
    }

    #[test]
    fn the_pool_refills_a_whole_pass_at_a_time() {
        let e = epoch(50);
        let pool = CountPool::new(1 << 20, None);
        let filler = filled(&pool, true);
        pool.serve(Some(Arc::clone(&e)));
        wait_for(&pool, MAX_PREPARED);
        assert_eq!(pool.level().prepared, MAX_PREPARED as u64);
        // Fewer than a pass missing: nothing is prepared.
        for _ in 0..PREPARE_BATCH - 1 {
            pool.take(e.id()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(pool.level().prepared, MAX_PREPARED as u64);
        // A whole pass missing: one pass refills it to the bound.
        pool.take(e.id()).unwrap();
        wait_for(&pool, MAX_PREPARED);
        assert_eq!(pool.level().prepared, (MAX_PREPARED + PREPARE_BATCH) as u64);
        pool.stop();
        filler.join().unwrap();
    }

    #[test]
    fn a_session_too_large_for_memory_is_prepared_to_disk_within_its_own_bound() {
        let e = epoch(100);
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskPool {
            dir: dir.path().join("count-sessions"),
            limit_bytes: 3 * 1600 + 10,
        };
        // Not one session of 1600 bytes fits 1000 bytes of memory: three go to disk.
        let pool = CountPool::new(1000, Some(disk));
        let filler = filled(&pool, true);
        pool.serve(Some(Arc::clone(&e)));
        wait_for(&pool, 3);
        std::thread::sleep(Duration::from_millis(50));
        let level = pool.level();
        assert_eq!((level.ready, level.on_disk, level.bytes), (3, 3, 3 * 1600));
        assert!(pool.take(e.id()).unwrap().is_outside());
        pool.stop();
        filler.join().unwrap();

        // Without a disk bound, none is prepared.
        let pool = CountPool::new(1000, None);
        let filler = filled(&pool, true);
        pool.serve(Some(Arc::clone(&e)));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(pool.level().prepared, 0);
        pool.stop();
        filler.join().unwrap();
    }

    #[test]
    fn a_new_epoch_drops_the_old_sessions_and_a_busy_node_prepares_none() {
        let (old, new) = (epoch(20), epoch(30));
        let pool = CountPool::new(1 << 20, None);
        let busy = filled(&pool, false);
        pool.serve(Some(Arc::clone(&old)));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(pool.level().prepared, 0, "nothing prepared while busy");
        pool.stop();
        busy.join().unwrap();

        let pool = CountPool::new(1 << 20, None);
        let filler = filled(&pool, true);
        pool.serve(Some(Arc::clone(&old)));
        wait_for(&pool, MAX_PREPARED);
        pool.serve(Some(Arc::clone(&new)));
        assert!(pool.take(old.id()).is_none(), "the old epoch's are gone");
        wait_for(&pool, 1);
        assert_eq!(pool.take(new.id()).unwrap().epoch(), new.id());
        pool.stop();
        filler.join().unwrap();
    }
}
