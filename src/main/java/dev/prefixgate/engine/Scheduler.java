package dev.prefixgate.engine;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * Bounded admission queue with per-tenant fairness: one FIFO per tenant, served round-robin, so a
 * tenant's burst only delays that tenant's own requests. Thread-safe; submitters add, the engine
 * thread takes.
 */
final class Scheduler {
  private final int capacity;
  private final Map<String, ArrayDeque<Sequence>> byTenant = new LinkedHashMap<>();
  private final List<String> ring = new ArrayList<>(); // tenants with waiting requests
  private int cursor;
  private int size;

  Scheduler(int capacity) {
    this.capacity = capacity;
  }

  synchronized void add(Sequence s) {
    if (size >= capacity) throw new QueueFullException(size);
    ArrayDeque<Sequence> q = byTenant.computeIfAbsent(s.request.tenant(), t -> new ArrayDeque<>());
    if (q.isEmpty()) ring.add(s.request.tenant());
    q.addLast(s);
    size++;
    notifyAll();
  }

  synchronized int size() {
    return size;
  }

  /**
   * Takes the next request in round-robin tenant order whose head fits; skips tenants whose head
   * does not fit, so a large request does not block smaller ones of other tenants.
   */
  synchronized Sequence poll(Predicate<Sequence> fits) {
    for (int tried = 0; tried < ring.size(); tried++) {
      int i = (cursor + tried) % ring.size();
      String tenant = ring.get(i);
      ArrayDeque<Sequence> q = byTenant.get(tenant);
      Sequence head = q.peekFirst();
      if (!fits.test(head)) continue;
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
