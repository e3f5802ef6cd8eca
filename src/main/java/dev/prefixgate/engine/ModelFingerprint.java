package dev.prefixgate.engine;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Identifies a served base model in adapter events, so an adapter trained for another base is
 * refused. Version 1 covers what an adapter's validity depends on and what every model directory
 * has: the architecture's shape and the exact vocabulary. It does not hash the weights (gigabytes,
 * and laid out differently in HF and ONNX form); the trainer computes the same value in {@code
 * prefixgate_trainer.fingerprint}.
 *
 * <pre>sha256("prefixgate-fingerprint-v1\nbloom {n_layer} {n_head} {hidden_size} {vocab_size}\n"
 *        + sha256_hex(tokenizer.json bytes) + "\n")</pre>
 */
public final class ModelFingerprint {
  private ModelFingerprint() {}

  public static String of(Path modelDir, ModelConfig c) throws IOException {
    String tokenizer = PrefixAdapter.sha256(Files.readAllBytes(modelDir.resolve("tokenizer.json")));
    String text =
        "prefixgate-fingerprint-v1\nbloom "
            + c.nLayer()
            + " "
            + c.nHead()
            + " "
            + c.hiddenSize()
            + " "
            + c.vocabSize()
            + "\n"
            + tokenizer
            + "\n";
    return PrefixAdapter.sha256(text.getBytes(StandardCharsets.UTF_8));
  }
}
