package dev.prefixgate.engine;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Incremental, UTF-8-safe detokenisation for one sequence.
 *
 * <p>Byte-level BPE can split one character across tokens. Bytes of an unfinished character are
 * held back until the character completes, so a client never sees U+FFFD for a split character and
 * never sees a character twice. Bytes that can never become valid UTF-8 are replaced by U+FFFD
 * once, as Python's {@code decode(errors="replace")} does. Special tokens produce no text.
 *
 * <p>Not thread-safe: one instance per sequence, used by the engine thread.
 */
public final class Detokenizer {
  private final TextTokenizer tokenizer;
  private final CharsetDecoder decoder =
      StandardCharsets.UTF_8
          .newDecoder()
          .onMalformedInput(CodingErrorAction.REPLACE)
          .onUnmappableCharacter(CodingErrorAction.REPLACE);
  private ByteBuffer pending = ByteBuffer.allocate(64); // bytes not yet decoded (write mode)
  private final CharBuffer chars = CharBuffer.allocate(256);

  public Detokenizer(TextTokenizer tokenizer) {
    this.tokenizer = tokenizer;
  }

  /** Appends one token and returns the text that became complete (possibly empty). */
  public String next(int tokenId) {
    byte[] bytes = tokenizer.bytes(tokenId);
    if (bytes.length == 0) return "";
    if (pending.remaining() < bytes.length) {
      ByteBuffer bigger =
          ByteBuffer.allocate(Math.max(pending.capacity() * 2, pending.position() + bytes.length));
      pending.flip();
      bigger.put(pending);
      pending = bigger;
    }
    pending.put(bytes);
    return drain(false);
  }

  /** Ends the sequence: an unfinished character becomes U+FFFD. */
  public String flush() {
    String out = drain(true);
    decoder.reset();
    return out;
  }

  private String drain(boolean endOfInput) {
    pending.flip();
    StringBuilder sb = new StringBuilder();
    while (true) {
      chars.clear();
      CoderResult r = decoder.decode(pending, chars, endOfInput);
      chars.flip();
      sb.append(chars);
      if (!r.isOverflow()) break;
    }
    if (endOfInput) {
      chars.clear();
      decoder.flush(chars);
      chars.flip();
      sb.append(chars);
    }
    pending.compact();
    return sb.toString();
  }
}
