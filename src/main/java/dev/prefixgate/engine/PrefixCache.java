package dev.prefixgate.engine;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Adapter digest → prefix KV, within a byte budget. Entries in use are reference-counted and never
 * evicted, nor are pinned ones (hot tenants); the others leave in least-recently-used order when
 * the budget is exceeded. Keyed by digest, so a new version (new digest) never serves stale KV, and
 * requests in flight keep the KV they started with. Thread-safe.
 */
public final class PrefixCache {
  /** Loads an adapter's KV on a miss (e.g. from the registry's blob). */
  @FunctionalInterface
  public interface Loader {
    PrefixKv load(String digest) throws Exception;
  }

  /** A reference to cached KV; close it when the request that uses it completes. */
  public final class Lease implements AutoCloseable {
    private final Entry entry;
    private final AtomicBoolean closed = new AtomicBoolean();

    private Lease(Entry entry) {
      this.entry = entry;
    }

    public PrefixKv kv() {
      return entry.kv;
    }

    @Override
    public void close() {
      if (closed.compareAndSet(false, true)) release(entry);
    }
  }

  private static final class Entry {
    final String digest;
    final PrefixKv kv;
    int refs;
    boolean pinned;

    Entry(String digest, PrefixKv kv) {
      this.digest = digest;
      this.kv = kv;
    }
  }

  private final long maxBytes;
  private final LinkedHashMap<String, Entry> entries = new LinkedHashMap<>(16, 0.75f, true);
  private long bytes;
  private final AtomicLong hits = new AtomicLong();
  private final AtomicLong misses = new AtomicLong();
  private final AtomicLong evictions = new AtomicLong();
  private final AtomicLong leases = new AtomicLong();

  public PrefixCache(long maxBytes) {
    if (maxBytes < 0) throw new IllegalArgumentException("cache max bytes " + maxBytes + " < 0");
    this.maxBytes = maxBytes;
  }

  /**
   * Returns a lease on the digest's KV, loading it on a miss. A failed load caches nothing.
   *
   * @param pinned keep the entry even when unused and over budget (hot tenants)
   */
  public Lease acquire(String digest, boolean pinned, Loader loader) throws Exception {
    synchronized (this) {
      Entry e = entries.get(digest);
      if (e != null) {
        e.pinned |= pinned;
        e.refs++;
        hits.incrementAndGet();
        leases.incrementAndGet();
        return new Lease(e);
      }
    }
    misses.incrementAndGet();
    PrefixKv kv = loader.load(digest); // outside the lock: other tenants keep being served
    synchronized (this) {
      Entry e = entries.get(digest);
      if (e == null) {
        e = new Entry(digest, kv);
        entries.put(digest, e);
        bytes += kv.bytes();
      }
      e.pinned |= pinned;
      e.refs++;
      leases.incrementAndGet();
      evict();
      return new Lease(e);
    }
  }

  private synchronized void release(Entry e) {
    e.refs--;
    leases.decrementAndGet();
    evict();
  }

  private void evict() {
    for (Iterator<Map.Entry<String, Entry>> it = entries.entrySet().iterator();
        bytes > maxBytes && it.hasNext(); ) {
      Entry e = it.next().getValue();
      if (e.refs > 0 || e.pinned) continue;
      it.remove();
      bytes -= e.kv.bytes();
      evictions.incrementAndGet();
    }
  }

  public synchronized long bytes() {
    return bytes;
  }

  public synchronized int size() {
    return entries.size();
  }

  public synchronized boolean contains(String digest) {
    return entries.containsKey(digest);
  }

  /** Leases handed out and not yet closed: with no request in flight, zero (else a leak). */
  public long leases() {
    return leases.get();
  }

  public long hits() {
    return hits.get();
  }

  public long misses() {
    return misses.get();
  }

  public long evictions() {
    return evictions.get();
  }
}
