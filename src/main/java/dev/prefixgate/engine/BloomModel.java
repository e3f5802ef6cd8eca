package dev.prefixgate.engine;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.logging.Logger;

/**
 * A frozen BLOOM loaded from a model directory ({@code model.onnx} [+ external data], {@code
 * config.json}, {@code tokenizer.json}), checked against the {@link GraphContract} at load. Owns
 * the ONNX session and the tokenizer; closed once by its owner.
 */
public final class BloomModel implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(BloomModel.class.getName());

  private final Path dir;
  private final ModelConfig config;
  private final GraphContract contract;
  private final TextTokenizer tokenizer;
  private final OrtEnvironment env;
  private final OrtSession session;
  private final String provider;

  private BloomModel(
      Path dir,
      ModelConfig config,
      TextTokenizer tokenizer,
      OrtEnvironment env,
      OrtSession session,
      String provider) {
    this.dir = dir;
    this.config = config;
    this.contract = new GraphContract(config);
    this.tokenizer = tokenizer;
    this.env = env;
    this.session = session;
    this.provider = provider;
  }

  /**
   * Loads and checks a model directory.
   *
   * @throws EngineException naming the missing file or the contract violation
   */
  public static BloomModel load(Path dir, EngineOptions options) {
    for (String name : new String[] {"model.onnx", "config.json", "tokenizer.json"}) {
      if (!Files.isRegularFile(dir.resolve(name))) {
        throw new EngineException("model directory " + dir + " has no " + name);
      }
    }
    ModelConfig config;
    TextTokenizer tokenizer;
    try {
      config = ModelConfig.read(dir.resolve("config.json"));
      tokenizer = TextTokenizer.load(dir.resolve("tokenizer.json"));
    } catch (IOException | IllegalArgumentException e) {
      throw new EngineException("cannot load " + dir + ": " + e.getMessage(), e);
    }
    if (tokenizer.vocabSize() > config.vocabSize()) {
      tokenizer.close();
      throw new EngineException(
          "tokenizer.json has "
              + tokenizer.vocabSize()
              + " tokens but config.json vocab_size is "
              + config.vocabSize());
    }
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    String provider = "CPU";
    try (OrtSession.SessionOptions so = new OrtSession.SessionOptions()) {
      so.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
      if (options.intraOpThreads() > 0) so.setIntraOpNumThreads(options.intraOpThreads());
      so.addConfigEntry("session.intra_op.allow_spinning", options.allowSpinning() ? "1" : "0");
      if (options.useCuda()) {
        try {
          so.addCUDA();
          provider = "CUDA";
        } catch (OrtException | UnsatisfiedLinkError e) {
          LOG.warning("CUDA provider unavailable, serving on CPU: " + e.getMessage());
        }
      }
      OrtSession session = env.createSession(dir.resolve("model.onnx").toString(), so);
      BloomModel model = new BloomModel(dir, config, tokenizer, env, session, provider);
      try {
        model.contract.check(session);
      } catch (EngineException e) {
        model.close();
        throw new EngineException(dir + ": " + e.getMessage());
      }
      LOG.info(
          () ->
              "loaded "
                  + dir
                  + " ("
                  + config.nLayer()
                  + " layers, "
                  + config.nHead()
                  + " heads, hidden "
                  + config.hiddenSize()
                  + ", vocab "
                  + config.vocabSize()
                  + ", logits "
                  + (model.contract.logitsLayout() == GraphContract.LogitsLayout.LAST_POSITION
                      ? "at the last position only"
                      : "at every position")
                  + switch (model.contract.kvLayout()) {
                    case SLOTS -> ", KV in place in fixed slots";
                    case APPEND -> ", KV in fixed slots, new columns appended";
                    case PAGED -> ", KV in pages of a pool";
                    case CONCAT -> "";
                  }
                  + ") on "
                  + "the "
                  + model.provider
                  + " provider");
      return model;
    } catch (OrtException e) {
      tokenizer.close();
      throw new EngineException(
          "ONNX Runtime cannot load " + dir.resolve("model.onnx") + ": " + e.getMessage(), e);
    }
  }

  /** Runs the graph, writing every output into the caller's pinned tensors. Engine thread only. */
  void run(Map<String, OnnxTensor> inputs, Map<String, OnnxTensor> outputs) throws OrtException {
    try (OrtSession.Result ignored = session.run(inputs, outputs)) {
      // Pinned outputs already hold the results; the Result only carries references to them.
    }
  }

  OrtEnvironment env() {
    return env;
  }

  public Path dir() {
    return dir;
  }

  public ModelConfig config() {
    return config;
  }

  public GraphContract contract() {
    return contract;
  }

  public TextTokenizer tokenizer() {
    return tokenizer;
  }

  public String provider() {
    return provider;
  }

  @Override
  public void close() {
    try {
      session.close();
    } catch (OrtException e) {
      LOG.warning("closing the ONNX session failed: " + e.getMessage());
    }
    tokenizer.close();
  }
}
