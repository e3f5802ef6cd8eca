package dev.prefixgate.engine;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.Map;

/**
 * BLOOM's byte-level BPE tokenizer: encoding through Hugging Face tokenizers (DJL, offline), and
 * decoding through a token → bytes table so that text can be produced incrementally and
 * UTF-8-safely (see {@link Detokenizer}).
 *
 * <p>Thread-safe: encoding is stateless and the byte table is immutable.
 */
public final class TextTokenizer implements AutoCloseable {
  private final HuggingFaceTokenizer encoder;
  private final byte[][] tokenBytes; // (vocab) raw bytes of each token; empty for specials
  private final boolean[] special; // (vocab)

  private TextTokenizer(HuggingFaceTokenizer encoder, byte[][] tokenBytes, boolean[] special) {
    this.encoder = encoder;
    this.tokenBytes = tokenBytes;
    this.special = special;
  }

  public static TextTokenizer load(Path tokenizerJson) throws IOException {
    JsonNode root = new ObjectMapper().readTree(Files.readAllBytes(tokenizerJson));
    String decoder = root.path("decoder").path("type").asText("");
    if (!decoder.equals("ByteLevel")) {
      throw new IllegalArgumentException(
          tokenizerJson
              + ": decoder type '"
              + decoder
              + "' is not supported (BLOOM uses ByteLevel)");
    }
    JsonNode vocab = root.path("model").path("vocab");
    int size = 0;
    for (JsonNode id : vocab) size = Math.max(size, id.asInt() + 1);
    for (JsonNode added : root.path("added_tokens"))
      size = Math.max(size, added.get("id").asInt() + 1);
    byte[][] bytes = new byte[size][];
    boolean[] special = new boolean[size];
    int[] unicodeToByte = unicodeToByte();
    for (Iterator<Map.Entry<String, JsonNode>> it = vocab.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      bytes[e.getValue().asInt()] = toBytes(e.getKey(), unicodeToByte);
    }
    for (JsonNode added : root.path("added_tokens")) {
      int id = added.get("id").asInt();
      boolean isSpecial = added.path("special").asBoolean(false);
      special[id] = isSpecial;
      bytes[id] =
          isSpecial ? new byte[0] : added.get("content").asText().getBytes(StandardCharsets.UTF_8);
    }
    for (int i = 0; i < size; i++) {
      if (bytes[i] == null) bytes[i] = new byte[0];
    }
    Map<String, String> options =
        Map.of("addSpecialTokens", "false", "truncation", "false", "padding", "false");
    return new TextTokenizer(
        HuggingFaceTokenizer.newInstance(tokenizerJson, options), bytes, special);
  }

  /** Token ids of {@code text}, with no special tokens added (BLOOM adds no BOS). */
  public int[] encode(String text) {
    return encode(text, false);
  }

  /**
   * Token ids of {@code text}; {@code addSpecialTokens} applies the tokenizer's post-processor
   * (BLOOM's has none, so both give the same ids there).
   */
  public int[] encode(String text, boolean addSpecialTokens) {
    long[] ids = encoder.encode(text, addSpecialTokens, false).getIds();
    int[] out = new int[ids.length];
    for (int i = 0; i < ids.length; i++) out[i] = Math.toIntExact(ids[i]);
    return out;
  }

  /** Raw bytes of one token (empty for special tokens and ids past the tokenizer's vocab). */
  public byte[] bytes(int tokenId) {
    return tokenId >= 0 && tokenId < tokenBytes.length ? tokenBytes[tokenId] : new byte[0];
  }

  public boolean isSpecial(int tokenId) {
    return tokenId >= 0 && tokenId < special.length && special[tokenId];
  }

  public int vocabSize() {
    return tokenBytes.length;
  }

  /** Whole-sequence decode (specials skipped), for tests and non-streaming callers. */
  public String decode(int[] ids) {
    Detokenizer d = new Detokenizer(this);
    StringBuilder sb = new StringBuilder();
    for (int id : ids) sb.append(d.next(id));
    return sb.append(d.flush()).toString();
  }

  @Override
  public void close() {
    encoder.close();
  }

  private static byte[] toBytes(String token, int[] unicodeToByte) {
    byte[] out = new byte[token.length()];
    int n = 0;
    for (int i = 0; i < token.length(); i++) {
      char c = token.charAt(i);
      int b = c < unicodeToByte.length ? unicodeToByte[c] : -1;
      if (b < 0) {
        // Not a byte-level symbol: keep its UTF-8 text (never happens in a BLOOM vocab).
        return token.getBytes(StandardCharsets.UTF_8);
      }
      out[n++] = (byte) b;
    }
    return out;
  }

  /**
   * Inverse of GPT-2/BLOOM's bytes_to_unicode: printable bytes map to themselves, others to 256+.
   */
  private static int[] unicodeToByte() {
    int[] map = new int[512];
    java.util.Arrays.fill(map, -1);
    int next = 0;
    for (int b = 0; b < 256; b++) {
      boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      map[printable ? b : 256 + next++] = b;
    }
    return map;
  }
}
