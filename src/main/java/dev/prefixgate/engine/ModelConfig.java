package dev.prefixgate.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The parts of a BLOOM {@code config.json} that the engine depends on.
 *
 * @param nLayer transformer blocks (BLOOM's {@code n_layer})
 * @param nHead attention heads (BLOOM's {@code n_head})
 * @param hiddenSize model width; the per-head width is {@code hiddenSize / nHead}
 * @param vocabSize rows of the embedding / columns of the logits
 * @param eosTokenId end-of-sequence id
 * @param padTokenId id written into left-padding columns (masked out, so any valid id works)
 */
public record ModelConfig(
    int nLayer, int nHead, int hiddenSize, int vocabSize, int eosTokenId, int padTokenId) {

  public ModelConfig {
    if (nLayer < 1) throw new IllegalArgumentException("n_layer " + nLayer + " must be >= 1");
    if (nHead < 1) throw new IllegalArgumentException("n_head " + nHead + " must be >= 1");
    if (hiddenSize < nHead || hiddenSize % nHead != 0) {
      throw new IllegalArgumentException(
          "hidden_size " + hiddenSize + " must be a positive multiple of n_head " + nHead);
    }
    if (vocabSize < 1) throw new IllegalArgumentException("vocab_size " + vocabSize + " < 1");
    if (eosTokenId < 0 || eosTokenId >= vocabSize) {
      throw new IllegalArgumentException(
          "eos_token_id " + eosTokenId + " not in [0, " + vocabSize + ")");
    }
  }

  public int headDim() {
    return hiddenSize / nHead;
  }

  /** Reads {@code config.json}; accepts BLOOM's field names and their common aliases. */
  public static ModelConfig read(Path configJson) throws IOException {
    JsonNode n = new ObjectMapper().readTree(Files.readAllBytes(configJson));
    String type = n.path("model_type").asText("");
    if (!type.isEmpty() && !type.equals("bloom")) {
      throw new IllegalArgumentException(
          configJson + ": model_type '" + type + "' is not supported (only 'bloom')");
    }
    return new ModelConfig(
        required(n, configJson, "n_layer", "num_hidden_layers"),
        required(n, configJson, "n_head", "num_attention_heads"),
        required(n, configJson, "hidden_size", "n_embed"),
        required(n, configJson, "vocab_size"),
        n.path("eos_token_id").asInt(2),
        n.path("pad_token_id").asInt(3));
  }

  private static int required(JsonNode n, Path file, String... names) {
    for (String name : names) {
      if (n.has(name) && n.get(name).canConvertToInt()) return n.get(name).asInt();
    }
    throw new IllegalArgumentException(file + ": missing integer field '" + names[0] + "'");
  }
}
