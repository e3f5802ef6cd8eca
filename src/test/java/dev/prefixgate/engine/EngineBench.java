package dev.prefixgate.engine;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;

/**
 * In-process engine benchmark (no HTTP): for each concurrency level, that many greedy requests with
 * distinct adapters are submitted at once. Prints one JSON object per level with the medians over
 * the repetitions, in the same shape as {@code prefixgate_trainer.bench_ort} so a driver can
 * compare. It lives in the test sources (a tool, not part of the served jar); bench/engine-bench
 * builds and runs it.
 *
 * <pre>
 * java -cp 'target/quarkus-app/lib/main/*:target/classes:target/test-classes' dev.prefixgate.engine.EngineBench \
 *     --model DIR --adapters A,B,C --concurrency 1,2,4,8 --new-tokens 64 --reps 3 --threads 0 \
 *     [--prompt-tokens 1000] [--prefill-step-tokens N] [--warmup-seconds 3]
 * </pre>
 */
public final class EngineBench {
  private EngineBench() {}

  /**
   * One level's run. {@code steadyTokS}: tokens all streams emitted while every stream was decoding
   * (from the last stream's first token to the first stream's last), per second; NaN when that
   * window is empty (streams that finish before the last one starts).
   */
  record Run(long wallNanos, long[] ttftNanos, long[] totalNanos, double steadyTokS) {}

  public static void main(String[] args) throws Exception {
    Path modelDir = null;
    List<Path> adapterDirs = new ArrayList<>();
    int[] levels = {1, 2, 4, 8};
    int newTokens = 64;
    int reps = 3;
    int threads = 0;
    int promptTokens = 0;
    int prefillStep = -1;
    double warmupSeconds = 3;
    for (int i = 0; i < args.length; i += 2) {
      String v = args[i + 1];
      switch (args[i]) {
        case "--model" -> modelDir = Path.of(v);
        case "--adapters" -> Arrays.stream(v.split(",")).map(Path::of).forEach(adapterDirs::add);
        case "--concurrency" ->
            levels = Arrays.stream(v.split(",")).mapToInt(Integer::parseInt).toArray();
        case "--new-tokens" -> newTokens = Integer.parseInt(v);
        case "--reps" -> reps = Integer.parseInt(v);
        case "--threads" -> threads = Integer.parseInt(v);
        case "--prompt-tokens" -> promptTokens = Integer.parseInt(v);
        case "--prefill-step-tokens" -> prefillStep = Integer.parseInt(v);
        case "--warmup-seconds" -> warmupSeconds = Double.parseDouble(v);
        default -> throw new IllegalArgumentException("unknown option " + args[i]);
      }
    }
    if (modelDir == null || adapterDirs.isEmpty()) {
      throw new IllegalArgumentException("--model and --adapters are required");
    }
    int maxLevel = Arrays.stream(levels).max().orElse(1);
    EngineOptions options =
        EngineOptions.defaults()
            .withIntraOpThreads(threads)
            .withMaxBatchRows(Math.max(16, maxLevel));
    if (prefillStep >= 0) options = options.withPrefillStepTokens(prefillStep);
    try (BloomModel model = BloomModel.load(modelDir, options);
        Engine engine = new Engine(model, options)) {
      List<PrefixKv> prefixes = new ArrayList<>();
      for (Path dir : adapterDirs) {
        prefixes.add(
            PrefixAdapter.read(
                    Files.readAllBytes(dir.resolve("adapter_config.json")),
                    Files.readAllBytes(dir.resolve("adapter_model.safetensors")),
                    model.config())
                .kv());
      }
      int[] prompt = model.tokenizer().encode("Human: Greet the person.\nNia\n\nAssistant:");
      if (promptTokens > 0) {
        // A long context: the same words over and over, then the question.
        int[] filler =
            model.tokenizer().encode(" The river runs past the old mill and the fields.");
        int[] longPrompt = new int[promptTokens];
        for (int i = 0; i < promptTokens - prompt.length; i++) {
          longPrompt[i] = filler[i % filler.length];
        }
        System.arraycopy(prompt, 0, longPrompt, promptTokens - prompt.length, prompt.length);
        prompt = longPrompt;
      }
      System.err.printf(
          Locale.ROOT,
          "engine: %s, KV %s, prompt %d tokens, %d new%n",
          modelDir,
          model.contract().kvLayout(),
          prompt.length,
          newTokens);
      // Warm-up, not measured: the first runs allocate, and HotSpot compiles the per-step methods
      // with C2 only after thousands of calls (on the tiny model a 24-token run is still partly
      // interpreted). The levels in turn, until --warmup-seconds have passed (at least one run: on
      // the 560m model one run already takes longer); the Python loop (bench_ort) warms up the
      // same way, so the two are compared hot.
      long warmEnd = System.nanoTime() + (long) (warmupSeconds * 1e9);
      int warm = 0;
      do {
        once(engine, prefixes, prompt, levels[warm++ % levels.length], newTokens);
      } while (System.nanoTime() < warmEnd);
      for (int c : levels) {
        double[] ttft = new double[reps];
        double[] decode = new double[reps];
        double[] aggregate = new double[reps];
        double[] steady = new double[reps];
        for (int r = 0; r < reps; r++) {
          Run run = once(engine, prefixes, prompt, c, newTokens);
          long[] perStreamDecode = new long[c];
          for (int i = 0; i < c; i++) perStreamDecode[i] = run.totalNanos[i] - run.ttftNanos[i];
          ttft[r] = median(run.ttftNanos) / 1e6;
          decode[r] = (newTokens - 1) / (median(perStreamDecode) / 1e9);
          aggregate[r] = (double) c * newTokens / (run.wallNanos / 1e9);
          steady[r] = run.steadyTokS;
        }
        System.out.printf(
            Locale.ROOT,
            "{\"subject\": \"engine\", \"concurrency\": %d, \"ttft_ms\": %.2f, \"decode_tok_s\": %.2f,"
                + " \"aggregate_tok_s\": %.2f, \"steady_tok_s\": %.2f, \"kv\": \"%s\","
                + " \"prompt_tokens\": %d}%n",
            c,
            median(ttft),
            median(decode),
            median(aggregate),
            median(steady),
            model.contract().kvLayout(),
            prompt.length);
      }
    }
  }

  private static Run once(Engine engine, List<PrefixKv> prefixes, int[] prompt, int c, int n) {
    List<CompletableFuture<Completion>> done = new ArrayList<>();
    long[][] times = new long[c][n];
    int[] counts = new int[c];
    long start = System.nanoTime();
    for (int i = 0; i < c; i++) {
      CompletableFuture<Completion> f = new CompletableFuture<>();
      final int stream = i;
      TokenListener l =
          new TokenListener() {
            @Override
            public void onToken(int tokenId, String text, float logprob) {
              if (counts[stream] < n) times[stream][counts[stream]++] = System.nanoTime();
            }

            @Override
            public void onComplete(Completion completion) {
              f.complete(completion);
            }
          };
      GenerationRequest req =
          new GenerationRequest(
              "tenant-" + i,
              prefixes.get(i % prefixes.size()),
              prompt,
              SamplingParams.greedy(n).withIgnoreEos(true));
      engine.submit(req, l);
      done.add(f);
    }
    long[] ttft = new long[c];
    long[] total = new long[c];
    for (int i = 0; i < c; i++) {
      Completion comp = done.get(i).join();
      if (comp.reason() == FinishReason.ERROR) throw new IllegalStateException(comp.error());
      ttft[i] = comp.firstTokenNanos();
      total[i] = comp.totalNanos();
    }
    long from = Long.MIN_VALUE;
    long to = Long.MAX_VALUE;
    for (int i = 0; i < c; i++) {
      from = Math.max(from, times[i][0]);
      to = Math.min(to, times[i][counts[i] - 1]);
    }
    double steady = Double.NaN;
    if (to > from) {
      long tokens = 0;
      for (int i = 0; i < c; i++) {
        for (int k = 0; k < counts[i]; k++) {
          if (times[i][k] > from && times[i][k] <= to) tokens++;
        }
      }
      steady = tokens / ((to - from) / 1e9);
    }
    return new Run(System.nanoTime() - start, ttft, total, steady);
  }

  private static double median(long[] v) {
    return median(Arrays.stream(v).asDoubleStream().toArray());
  }

  private static double median(double[] v) {
    double[] s = v.clone();
    Arrays.sort(s);
    return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  }
}
