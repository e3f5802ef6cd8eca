package dev.prefixgate.engine;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import java.util.function.ToIntFunction;

/**
 * Bounded admission queue with per-tenant fairness: one FIFO per tenant, served round-robin, so a
 * tenant's burst only delays that tenant's own requests. Thread-safe; submitters add, the engine
 * thread takes.
 *
 * <p>Two rules keep one tenant from crowding out the others. In the queue: a tenant may have at
 * most {@code perTenant} requests waiting, and a tenant with nothing waiting is always let in, even
 * when the global bound is reached, so a burst from one tenant never answers another tenant's
 * single request with a 429 (the queue can exceed its bound by at most one request per tenant). In
 * admission: {@link #poll} first offers rows only to tenants below their fair share; a tenant at or
 * above it is admitted only when no other waiting tenant can be.
 */
final class Scheduler {
  private final int capacity;
  private final int perTenant;
  private final Map<String, ArrayDeque<Sequence>> byTenant = new LinkedHashMap<>();
  private final List<String> ring = new ArrayList<>(); // tenants with waiting requests
  private int cursor;
  private int size;

  Scheduler(int capacity) {
    this(capacity, capacity);
  }

  Scheduler(int capacity, int perTenant) {
    this.capacity = capacity;
    this.perTenant = perTenant;
  }

  synchronized void add(Sequence s) {
    String tenant = s.request.tenant();
    ArrayDeque<Sequence> q = byTenant.get(tenant);
    int mine = q == null ? 0 : q.size();
    if (mine >= perTenant) {
      throw new QueueFullException(
          "server busy: tenant " + tenant + " already has " + mine + " requests waiting", mine);
    }
    if (mine > 0 && size >= capacity) throw new QueueFullException(size);
    if (q == null) {
      q = new ArrayDeque<>();
      byTenant.put(tenant, q);
      ring.add(tenant);
    }
    q.addLast(s);
    size++;
    notifyAll();
  }

  synchronized int size() {
    return size;
  }

  /** Takes the next request in round-robin tenant order whose head fits; see {@link #poll}. */
  synchronized Sequence poll(Predicate<Sequence> fits) {
    return poll(fits, t -> 0, Integer.MAX_VALUE, Integer.MAX_VALUE);
  }

  /**
   * Takes the next request in round-robin tenant order whose head fits; skips tenants whose head
   * does not fit, so a large request does not block smaller ones of other tenants.
   *
   * @param running rows each tenant holds now (including ones admitted in this round)
   * @param shareRows a tenant holding this many rows is passed over while another tenant can be
   *     admitted
   * @param maxRows a tenant holding this many rows is never admitted
   */
  synchronized Sequence poll(
      Predicate<Sequence> fits, ToIntFunction<String> running, int shareRows, int maxRows) {
    Sequence s = take(fits, running, shareRows, maxRows);
    return s != null ? s : take(fits, running, maxRows, maxRows);
  }

  private Sequence take(
      Predicate<Sequence> fits, ToIntFunction<String> running, int limit, int maxRows) {
    for (int tried = 0; tried < ring.size(); tried++) {
      int i = (cursor + tried) % ring.size();
      String tenant = ring.get(i);
      ArrayDeque<Sequence> q = byTenant.get(tenant);
      Sequence head = q.peekFirst();
      if (!head.cancelled) {
        int held = running.applyAsInt(tenant);
        if (held >= limit || held >= maxRows || !fits.test(head)) continue;
      }
      q.pollFirst();
      size--;
      if (q.isEmpty()) {
        ring.remove(i);
        byTenant.remove(tenant);
        cursor = ring.isEmpty() ? 0 : i % ring.size();
      } else {
        cursor = (i + 1) % ring.size();
      }
      return head;
    }
    return null;
  }

  /** Removes queued sequences that were cancelled; returns them so they can be completed. */
  synchronized List<Sequence> removeCancelled() {
    List<Sequence> out = new ArrayList<>();
    for (Iterator<Map.Entry<String, ArrayDeque<Sequence>>> it = byTenant.entrySet().iterator();
        it.hasNext(); ) {
      Map.Entry<String, ArrayDeque<Sequence>> e = it.next();
      e.getValue().removeIf(s -> s.cancelled && out.add(s));
      if (e.getValue().isEmpty()) {
        it.remove();
        int i = ring.indexOf(e.getKey());
        ring.remove(i);
        if (cursor > i) cursor--;
        if (cursor >= ring.size()) cursor = 0;
      }
    }
    size -= out.size();
    return out;
  }

  synchronized List<Sequence> drain() {
    List<Sequence> out = new ArrayList<>();
    byTenant.values().forEach(out::addAll);
    byTenant.clear();
    ring.clear();
    size = 0;
    return out;
  }

  /** Blocks until a request arrives or the timeout passes. */
  synchronized void awaitWork(long millis) throws InterruptedException {
    if (size == 0) wait(millis);
  }

  synchronized void wake() {
    notifyAll();
  }
}
