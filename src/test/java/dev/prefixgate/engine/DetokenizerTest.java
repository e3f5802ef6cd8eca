package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Incremental decoding never shows U+FFFD for a split character and never repeats text. */
class DetokenizerTest {
  private final TextTokenizer tok = Fixtures.model().tokenizer();

  @Test
  void encodeMatchesPythonTokenizerGoldenIds() {
    for (String id : List.of("base/0", "acme/1", "globex/3")) {
      var c = Fixtures.goldenCase(id);
      assertEquals(
          List.of(box(Fixtures.ints(c.get("prompt_ids")))),
          List.of(box(tok.encode(c.get("prompt").asText()))));
    }
  }

  private static Integer[] box(int[] v) {
    Integer[] out = new Integer[v.length];
    for (int i = 0; i < v.length; i++) out[i] = v[i];
    return out;
  }

  /** Byte-level tokens of one multi-byte character, found in the real vocabulary. */
  @Test
  void splitCharactersAreHeldUntilComplete() {
    String text = "señor über 🙂 naïve";
    int[] ids = tok.encode(text);
    boolean sawSplit = false;
    Detokenizer d = new Detokenizer(tok);
    StringBuilder out = new StringBuilder();
    List<String> pieces = new ArrayList<>();
    for (int id : ids) {
      sawSplit |= new String(tok.bytes(id), StandardCharsets.UTF_8).contains("\uFFFD");
      String piece = d.next(id);
      assertFalse(piece.contains("\uFFFD"), "piece " + pieces.size() + " of " + text);
      pieces.add(piece);
      out.append(piece);
    }
    out.append(d.flush());
    assertTrue(sawSplit, "the test text must split a character across tokens: " + pieces);
    assertEquals(text, out.toString());
    assertTrue(pieces.contains(""), "some token must be held back");
  }

  /**
   * Every golden output, streamed token by token until eos, reassembles to the golden text with no
   * U+FFFD in any piece; the Chinese goldens must contain tokens that end inside a character.
   */
  @Test
  void goldenOutputsStreamWithoutBrokenCharacters() {
    int eos = Fixtures.golden().get("eos_token_id").asInt();
    int splitTokens = 0;
    for (String id : Fixtures.caseIds()) {
      var c = Fixtures.goldenCase(id);
      String golden = c.get("text").asText();
      String expected =
          golden.contains("</s>") ? golden.substring(0, golden.indexOf("</s>")) : golden;
      Detokenizer d = new Detokenizer(tok);
      StringBuilder out = new StringBuilder();
      for (int t : Fixtures.ints(c.get("new_ids"))) {
        if (t == eos) break;
        if (new String(tok.bytes(t), StandardCharsets.UTF_8).contains("\uFFFD")) splitTokens++;
        String piece = d.next(t);
        assertFalse(piece.contains("\uFFFD"), id + ": " + out);
        out.append(piece);
      }
      out.append(d.flush());
      assertEquals(expected, out.toString(), id);
    }
    assertTrue(splitTokens > 0, "no golden output splits a character across tokens");
  }

  @Test
  void invalidBytesBecomeOneReplacementAndUnfinishedTailIsFlushed() {
    int lead = idOfByte(0xC3); // first byte of a two-byte character, alone
    int cont = idOfByte(0xA9); // a continuation byte alone
    Detokenizer d = new Detokenizer(tok);
    assertEquals("\uFFFD", d.next(cont));
    assertEquals("", d.next(lead));
    assertEquals("\uFFFD", d.flush());
  }

  @Test
  void specialTokensProduceNoText() {
    Detokenizer d = new Detokenizer(tok);
    assertEquals("", d.next(2));
    assertTrue(tok.isSpecial(2));
    assertEquals("Hello", tok.decode(tok.encode("Hello")));
  }

  private int idOfByte(int b) {
    for (int id = 0; id < tok.vocabSize(); id++) {
      byte[] bytes = tok.bytes(id);
      if (bytes.length == 1 && (bytes[0] & 0xff) == b) return id;
    }
    throw new AssertionError("no single-byte token for " + b);
  }
}
