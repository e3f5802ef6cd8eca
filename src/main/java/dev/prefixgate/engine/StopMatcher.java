package dev.prefixgate.engine;

import java.util.List;

/**
 * Text-level stop sequences. Text that could still turn into a stop sequence is held back, so a
 * stop sequence never reaches the client, not even in part.
 */
final class StopMatcher {
  private final List<String> stops;
  private final StringBuilder held = new StringBuilder();
  private boolean matched;

  StopMatcher(List<String> stops) {
    this.stops = stops;
  }

  /** Feeds new text; returns the part that is safe to emit now. */
  String feed(String text) {
    if (stops.isEmpty()) return text;
    if (matched || text.isEmpty()) return "";
    held.append(text);
    int cut = -1;
    for (String s : stops) {
      int i = held.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      matched = true;
      String out = held.substring(0, cut);
      held.setLength(0);
      return out;
    }
    int keep = 0;
    for (String s : stops) keep = Math.max(keep, overlap(held, s));
    String out = held.substring(0, held.length() - keep);
    held.delete(0, held.length() - keep);
    return out;
  }

  boolean matched() {
    return matched;
  }

  /** Text held back at the end of a sequence that did not stop on a stop sequence. */
  String release() {
    String out = held.toString();
    held.setLength(0);
    return out;
  }

  /** Length of the longest suffix of {@code text} that is a proper prefix of {@code stop}. */
  private static int overlap(CharSequence text, String stop) {
    for (int n = Math.min(text.length(), stop.length() - 1); n > 0; n--) {
      boolean same = true;
      for (int i = 0; i < n && same; i++) {
        same = text.charAt(text.length() - n + i) == stop.charAt(i);
      }
      if (same) return n;
    }
    return 0;
  }
}
