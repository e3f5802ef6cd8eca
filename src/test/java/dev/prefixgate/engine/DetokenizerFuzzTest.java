package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * The incremental detokenizer on any token-id sequence (specials, ids past the vocabulary, bytes of
 * split or invalid characters), one instance reused across sequences: the pieces plus the flush
 * must be exactly the whole-bytes decode with U+FFFD replacement, and no piece may end in half a
 * surrogate pair. Input layout: big-endian 16-bit token ids; 0xFFFF ends a sequence (flush).
 */
class DetokenizerFuzzTest {
  private static final TextTokenizer TOKENIZER;

  static {
    try {
      TOKENIZER =
          TextTokenizer.load(Path.of("trainer", "fixtures", "tiny-bloom", "tokenizer.json"));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @FuzzTest(maxDuration = "10s")
  void next(byte[] input) {
    Detokenizer d = new Detokenizer(TOKENIZER);
    ByteArrayOutputStream all = new ByteArrayOutputStream();
    StringBuilder out = new StringBuilder();
    for (int i = 0; i + 1 < input.length; i += 2) {
      int id = ((input[i] & 0xff) << 8) | (input[i + 1] & 0xff);
      if (id == 0xffff) {
        endSequence(d, all, out);
        continue;
      }
      all.writeBytes(TOKENIZER.bytes(id));
      String piece = d.next(id);
      assertFalse(
          !piece.isEmpty() && Character.isHighSurrogate(piece.charAt(piece.length() - 1)),
          "piece ends in half a surrogate pair");
      out.append(piece);
    }
    endSequence(d, all, out);
  }

  private static void endSequence(Detokenizer d, ByteArrayOutputStream all, StringBuilder out) {
    out.append(d.flush());
    assertEquals(new String(all.toByteArray(), StandardCharsets.UTF_8), out.toString());
    all.reset();
    out.setLength(0);
  }
}
