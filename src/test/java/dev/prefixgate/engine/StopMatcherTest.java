package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class StopMatcherTest {
  @Test
  void stopSplitAcrossPiecesIsNeverEmitted() {
    StopMatcher m = new StopMatcher(List.of("</end>"));
    assertEquals("Hello ", m.feed("Hello </"));
    assertEquals("", m.feed("en"));
    assertEquals("", m.feed("d> more"));
    assertTrue(m.matched());
  }

  @Test
  void falseStartIsReleased() {
    StopMatcher m = new StopMatcher(List.of("###"));
    assertEquals("a", m.feed("a#"));
    assertEquals("#b", m.feed("b"));
    assertFalse(m.matched());
    assertEquals("", m.feed("##"));
    assertEquals("##", m.release());
  }

  @Test
  void earliestOfSeveralStopsWins() {
    StopMatcher m = new StopMatcher(List.of("yo", "ho"));
    assertEquals("Arr ", m.feed("Arr ho yo"));
    assertTrue(m.matched());
  }

  @Test
  void noStopsPassesThrough() {
    StopMatcher m = new StopMatcher(List.of());
    assertEquals("abc", m.feed("abc"));
    assertEquals("", m.release());
  }
}
