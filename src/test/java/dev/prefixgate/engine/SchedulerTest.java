package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Queue bounds and fair-share admission, on the scheduler alone (no engine thread). */
class SchedulerTest {
  private static Sequence seq(String tenant) {
    return new Sequence(
        new GenerationRequest(tenant, null, new int[] {5, 6}, SamplingParams.greedy(4)),
        new Collector(),
        Fixtures.model().tokenizer(),
        1);
  }

  @Test
  void aTenantsFloodNeverRejectsAnotherTenantsFirstRequest() {
    Scheduler s = new Scheduler(4, 3);
    for (int i = 0; i < 3; i++) s.add(seq("busy"));
    QueueFullException own = assertThrows(QueueFullException.class, () -> s.add(seq("busy")));
    assertTrue(own.getMessage().contains("tenant busy"), own.getMessage());
    s.add(seq("other")); // global bound reached with this one
    s.add(seq("quiet")); // over the bound: quiet had nothing waiting
    assertEquals(5, s.size());
    assertThrows(QueueFullException.class, () -> s.add(seq("quiet")));
    assertThrows(QueueFullException.class, () -> s.add(seq("other")));
  }

  @Test
  void aTenantAtItsShareWaitsWhileAnotherCanRun() {
    Scheduler s = new Scheduler(16);
    Sequence a1 = seq("a");
    Sequence a2 = seq("a");
    Sequence b1 = seq("b");
    s.add(a1);
    s.add(a2);
    s.add(b1);
    Map<String, Integer> held = new HashMap<>(Map.of("a", 2));
    // a holds its share (2): b goes first even though a is next in the ring.
    assertSame(b1, s.poll(q -> true, t -> held.getOrDefault(t, 0), 2, 4));
    // Only a waits now: it may go beyond its share (work-conserving) ...
    assertSame(a1, s.poll(q -> true, t -> held.getOrDefault(t, 0), 2, 4));
    // ... but never beyond its hard cap.
    held.put("a", 4);
    assertNull(s.poll(q -> true, t -> held.getOrDefault(t, 0), 2, 4));
    held.put("a", 3);
    assertSame(a2, s.poll(q -> true, t -> held.getOrDefault(t, 0), 2, 4));
  }

  @Test
  void aHeadThatDoesNotFitDoesNotBlockOthers() {
    Scheduler s = new Scheduler(16);
    Sequence big = seq("a");
    Sequence small = seq("b");
    s.add(big);
    s.add(small);
    assertSame(small, s.poll(q -> q != big, t -> 0, 8, 16));
    assertNull(s.poll(q -> q != big, t -> 0, 8, 16));
  }
}
