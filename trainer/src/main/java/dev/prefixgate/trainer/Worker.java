package dev.prefixgate.trainer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.networknt.schema.JsonSchema;
import com.networknt.schema.JsonSchemaFactory;
import com.networknt.schema.SpecVersion;
import com.networknt.schema.ValidationMessage;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Turns retrain requests into live adapters, one job at a time: fetch the data set (sha256 checked)
 * → run {@code prefixgate_trainer.job} → publish the adapter event → publish {@code succeeded} →
 * commit the offset. The offset is committed only after the adapter is out, so a worker that dies
 * mid-job leaves the request to the next one; the job is seeded, so the rerun produces the same
 * bytes and the registry keeps one version. Any failure becomes a {@code failed} status with a
 * reason, and the worker goes on with the next request.
 */
final class Worker implements AutoCloseable {
  private static final ObjectMapper JSON = new ObjectMapper();

  private final WorkerConfig cfg;
  private final PrintStream log;
  private final KafkaConsumer<String, String> consumer;
  private final KafkaProducer<String, String> producer;
  private final HttpClient http = HttpClient.newHttpClient();
  private final JsonSchema requestSchema;
  private final Set<String> succeeded = new HashSet<>();
  // Attempts started per request id (a running status without a step opens each one), rebuilt
  // from the status topic at start, so a request that kills its worker is counted across restarts.
  private final Map<String, Integer> attempts = new java.util.HashMap<>();
  private volatile boolean running = true;

  Worker(WorkerConfig cfg, PrintStream log) throws IOException {
    this.cfg = cfg;
    this.log = log;
    try (InputStream in =
        Worker.class.getResourceAsStream("/schemas/retrain-request.schema.json")) {
      requestSchema = JsonSchemaFactory.getInstance(SpecVersion.VersionFlag.V202012).getSchema(in);
    }
    Properties p = cfg.kafka();
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, 24 * 1024 * 1024);
    // send() waits at most this long for a broker's metadata; publish() retries past it.
    p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 5000);
    producer = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
    Properties c = cfg.kafka();
    c.put(ConsumerConfig.GROUP_ID_CONFIG, cfg.groupId());
    c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    c.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 1);
    // A killed worker's partitions move to another worker after this long, not the 45 s default.
    c.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 10000);
    c.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 3000);
    // A job may take long; the group must not evict the worker while it trains.
    c.put(
        ConsumerConfig.MAX_POLL_INTERVAL_MS_CONFIG,
        (int) Math.min(Integer.MAX_VALUE, (cfg.timeoutSeconds() + 300) * 1000));
    consumer = new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer());
  }

  void run() {
    loadSucceeded();
    consumer.subscribe(List.of(cfg.retrainTopic()));
    log.println(
        "worker: waiting for retrain requests on "
            + cfg.retrainTopic()
            + " at "
            + cfg.bootstrap()
            + " as "
            + cfg.producer());
    while (running) {
      try {
        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
          handle(r.value());
          commit(r);
        }
      } catch (WakeupException e) {
        if (!running) break;
      } catch (org.apache.kafka.common.errors.AuthenticationException
          | org.apache.kafka.common.errors.AuthorizationException e) {
        throw e; // a wrong login or missing ACL does not heal by waiting: fail loudly
      } catch (org.apache.kafka.common.KafkaException e) {
        // The broker went away (or the group rebalanced under us): keep the worker, poll again.
        log.println("worker: Kafka error, retrying: " + e.getMessage());
        pause(1000);
      }
    }
  }

  /**
   * Commits past a handled record. A broker outage can make this fail; the record is then delivered
   * again and a request that succeeded is recognised and not trained twice.
   */
  private void commit(ConsumerRecord<String, String> r) {
    try {
      consumer.commitSync(
          Map.of(
              new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1)),
          Duration.ofSeconds(30));
    } catch (WakeupException e) {
      throw e;
    } catch (org.apache.kafka.common.KafkaException e) {
      log.println(
          "worker: could not commit offset "
              + (r.offset() + 1)
              + " ("
              + e.getMessage()
              + "); the request may come again and is then recognised");
    }
  }

  /**
   * Sends one record and waits for the broker's acknowledgement, riding out a broker that is away
   * (restarting, failing over) for up to {@code publishTimeoutSeconds}: what is being published (a
   * trained adapter, a final status) must not be lost to a short outage. A record the broker
   * refuses for good (authorisation, size) fails at once.
   */
  private void publish(ProducerRecord<String, String> record) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(PUBLISH_TIMEOUT_SECONDS);
    long backoff = 500;
    while (true) {
      try {
        producer.send(record).get(30, TimeUnit.SECONDS);
        return;
      } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
        Throwable cause = e instanceof java.util.concurrent.ExecutionException ? e.getCause() : e;
        boolean transient_ =
            cause instanceof java.util.concurrent.TimeoutException
                || cause instanceof org.apache.kafka.common.errors.RetriableException;
        if (!transient_ || System.nanoTime() > deadline) throw e;
        log.println(
            "worker: "
                + record.topic()
                + " not reachable ("
                + cause.getClass().getSimpleName()
                + "); retrying");
        pause(backoff);
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
  }

  static final long PUBLISH_TIMEOUT_SECONDS = 600;

  private static void pause(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Request ids that already succeeded (from the status topic), so a redelivery trains nothing. */
  private void loadSucceeded() {
    Properties c = cfg.kafka();
    try (KafkaConsumer<String, String> status =
        new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer())) {
      List<TopicPartition> parts =
          status.partitionsFor(cfg.statusTopic(), Duration.ofSeconds(15)).stream()
              .map(i -> new TopicPartition(i.topic(), i.partition()))
              .toList();
      status.assign(parts);
      status.seekToBeginning(parts);
      Map<TopicPartition, Long> end = status.endOffsets(parts);
      while (parts.stream().anyMatch(tp -> status.position(tp) < end.get(tp))) {
        for (ConsumerRecord<String, String> r : status.poll(Duration.ofMillis(500))) {
          try {
            JsonNode s = JSON.readTree(r.value());
            String state = s.path("state").asText();
            if (Set.of("succeeded", "not_activated").contains(state))
              succeeded.add(s.path("requestId").asText());
            if (state.equals("running") && !s.has("step"))
              attempts.merge(s.path("requestId").asText(), 1, Integer::sum);
          } catch (IOException ignored) {
            // not ours to judge: the gateway validates status events
          }
        }
      }
    } catch (Exception e) {
      log.println(
          "worker: could not read past statuses ("
              + e.getMessage()
              + "); duplicates fall back to"
              + " the registry's digest idempotency");
    }
  }

  void handle(String value) {
    JsonNode req;
    try {
      req = JSON.readTree(value);
    } catch (IOException e) {
      log.println("worker: skipping a record that is not JSON");
      return;
    }
    String requestId = req.path("requestId").asText("");
    Set<ValidationMessage> errors = requestSchema.validate(req);
    if (!errors.isEmpty()) {
      if (!requestId.isEmpty()) {
        fail(
            req,
            "invalid retrain request: "
                + errors.stream()
                    .map(ValidationMessage::getMessage)
                    .sorted()
                    .collect(Collectors.joining("; ")));
      }
      return;
    }
    if (succeeded.contains(requestId)) {
      log.println("worker: request " + requestId + " already succeeded; not training it again");
      return;
    }
    int started = attempts.getOrDefault(requestId, 0);
    if (started >= cfg.maxAttempts()) {
      deadLetter(
          value,
          req,
          "started "
              + started
              + " times without finishing (at most "
              + cfg.maxAttempts()
              + "); not trying again");
      return;
    }
    attempts.put(requestId, started + 1);
    try {
      train(req);
      succeeded.add(requestId);
    } catch (JobFailed e) {
      fail(req, e.getMessage());
    } catch (Exception e) {
      fail(req, "worker error: " + e);
    }
  }

  static final class JobFailed extends Exception {
    JobFailed(String message) {
      super(message);
    }
  }

  private void train(JsonNode req) throws Exception {
    status(req, Status.running(0, null, null));
    Path dir = Files.createTempDirectory(cfg.workDir(), "retrain-");
    try {
      train(req, dir);
    } finally {
      deleteTree(dir);
    }
  }

  private static void deleteTree(Path dir) {
    try (var paths = Files.walk(dir)) {
      paths.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException ignored) {
      // best effort: the folder lives under the work dir
    }
  }

  private void train(JsonNode req, Path dir) throws Exception {
    String requestId = req.get("requestId").asText();
    Path dataset = dir.resolve("dataset.jsonl");
    Files.write(dataset, fetchDataset(req.get("tenant").asText(), req.get("dataset")));
    List<String> cmd =
        new ArrayList<>(
            List.of(
                cfg.python().toString(),
                "-m",
                "prefixgate_trainer.job",
                "--model-dir",
                cfg.modelDir().toAbsolutePath().toString(),
                "--dataset",
                dataset.toString(),
                "--out",
                dir.resolve("out").toString(),
                "--tenant",
                req.get("tenant").asText(),
                "--adapter",
                req.get("adapter").asText(),
                "--request-id",
                requestId));
    JsonNode hp = req.path("hyperParameters");
    String[][] flags = {
      {"numVirtualTokens", "--num-virtual-tokens"},
      {"epochs", "--epochs"},
      {"maxSteps", "--max-steps"},
      {"batchSize", "--batch-size"},
      {"gradAccum", "--grad-accum"},
      {"learningRate", "--lr"}
    };
    for (String[] f : flags) {
      if (hp.has(f[0])) cmd.addAll(List.of(f[1], hp.get(f[0]).asText()));
    }
    cmd.addAll(activationFlags(req.path("activation")));
    log.println(
        "worker: request "
            + requestId
            + " for "
            + req.get("tenant").asText()
            + "/"
            + req.get("adapter").asText());
    Process proc;
    try {
      proc = new ProcessBuilder(cmd).directory(cfg.trainerDir().toFile()).start();
    } catch (IOException e) {
      throw new JobFailed(
          "cannot start the Python trainer (" + cfg.python() + "): " + e.getMessage());
    }
    ArrayDeque<String> stderr = new ArrayDeque<>();
    Thread errReader = new Thread(() -> tail(proc.getErrorStream(), stderr), "trainer-stderr");
    errReader.start();
    Thread outReader = new Thread(() -> progress(req, proc.getInputStream()), "trainer-progress");
    outReader.start();
    // The watchdog: waitFor returns at the timeout even when the job keeps its stdout open.
    if (!proc.waitFor(cfg.timeoutSeconds(), TimeUnit.SECONDS)) {
      proc.descendants().forEach(ProcessHandle::destroyForcibly);
      proc.destroyForcibly();
      proc.waitFor(30, TimeUnit.SECONDS);
      outReader.join(5000);
      throw new JobFailed("training timed out after " + cfg.timeoutSeconds() + " s and was killed");
    }
    outReader.join(5000);
    errReader.join(5000);
    if (proc.exitValue() != 0) {
      String reason;
      synchronized (stderr) {
        reason =
            stderr.stream()
                .filter(l -> l.startsWith("dataset:") || l.startsWith("hyper-parameters:"))
                .findFirst()
                .orElse(String.join("\n", stderr));
      }
      throw new JobFailed("training failed (exit " + proc.exitValue() + "): " + reason);
    }
    JsonNode event = JSON.readTree(Files.readAllBytes(dir.resolve("out").resolve("event.json")));
    // The event names who published it: this worker's Kafka principal, whatever the job wrote.
    ((ObjectNode) event).put("producer", cfg.producer());
    String key = req.get("tenant").asText() + "/" + req.get("adapter").asText();
    publish(new ProducerRecord<>(cfg.adaptersTopic(), key, event.toString()));
    // The job decided activation (its event says "always" or "never"); the state tells which.
    ObjectNode done = status(req, Status.finished(event));
    log.println("worker: request " + requestId + " " + done.get("state").asText() + ": " + done);
  }

  /** Relays the job's progress lines as running statuses (at most two a second). */
  private void progress(JsonNode req, InputStream stdout) {
    long lastSent = 0;
    try (BufferedReader out =
        new BufferedReader(new InputStreamReader(stdout, StandardCharsets.UTF_8))) {
      for (String line; (line = out.readLine()) != null; ) {
        if (!line.startsWith("{")) continue;
        JsonNode p;
        try {
          p = JSON.readTree(line);
        } catch (IOException e) {
          continue;
        }
        if (!"progress".equals(p.path("type").asText())) continue;
        int step = p.path("step").asInt();
        int total = Math.max(1, p.path("total").asInt(1));
        double pct = 100.0 * step / total;
        log.printf(
            "worker: %s %5.1f%% step %d/%d loss %.4f%n",
            bar(pct), pct, step, total, p.path("loss").asDouble());
        if (System.currentTimeMillis() - lastSent > 500 || step == total) {
          try {
            status(req, Status.running(Math.min(99.0, pct), step, p.path("loss").asDouble()));
            lastSent = System.currentTimeMillis();
          } catch (Exception e) {
            // The broker is away: keep reading the job's output (a full pipe would stall the
            // training) and try the next progress line in 10 s.
            log.println("worker: progress not published (" + e.getMessage() + ")");
            lastSent = System.currentTimeMillis() + 10_000;
          }
        }
      }
    } catch (Exception e) {
      log.println("worker: progress relay stopped: " + e.getMessage());
    }
  }

  /** The request's activation policy as job flags (absent: the job's own default, the gate). */
  static List<String> activationFlags(JsonNode activation) {
    List<String> flags = new ArrayList<>();
    if (activation.has("policy"))
      flags.addAll(List.of("--activate", activation.get("policy").asText()));
    if (activation.has("minImprovement"))
      flags.addAll(List.of("--min-improvement", activation.get("minImprovement").asText()));
    if (activation.has("maxEvalLoss"))
      flags.addAll(List.of("--max-eval-loss", activation.get("maxEvalLoss").asText()));
    JsonNode baseline = activation.path("baseline");
    if (baseline.has("evalLoss")) {
      flags.addAll(List.of("--baseline-loss", baseline.get("evalLoss").asText()));
      flags.addAll(List.of("--baseline-heldout", baseline.path("heldOutSha256").asText()));
    }
    return flags;
  }

  /**
   * Fetches the data set from the configured gateway by tenant and id, with the trainer key. The
   * request's {@code dataset.url} is never fetched: whoever can produce a request chooses it.
   */
  private byte[] fetchDataset(String tenant, JsonNode d) throws Exception {
    String id = d.get("id").asText();
    URI uri = URI.create(cfg.gatewayUrl() + "/trainer/tenants/" + tenant + "/datasets/" + id);
    HttpRequest.Builder b = HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(60));
    if (!cfg.trainerKey().isEmpty()) b.header("Authorization", "Bearer " + cfg.trainerKey());
    HttpResponse<InputStream> r;
    try {
      r = http.send(b.GET().build(), HttpResponse.BodyHandlers.ofInputStream());
    } catch (IOException e) {
      throw new JobFailed("cannot fetch data set " + id + " from the gateway: " + e.getMessage());
    }
    byte[] body;
    try (InputStream in = r.body()) {
      body = in.readNBytes((int) Math.min(Integer.MAX_VALUE - 8, cfg.maxDatasetBytes() + 1));
    }
    if (r.statusCode() != 200) {
      throw new JobFailed("fetching data set " + id + " gave HTTP " + r.statusCode());
    }
    if (body.length > cfg.maxDatasetBytes()) {
      throw new JobFailed(
          "data set " + id + " is larger than the limit of " + cfg.maxDatasetBytes() + " bytes");
    }
    String digest = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(body));
    if (!digest.equals(d.get("sha256").asText())) {
      throw new JobFailed(
          "data set sha256 mismatch: got "
              + digest
              + ", the request says "
              + d.get("sha256").asText());
    }
    return body;
  }

  /** Parks a request that keeps failing on the dead-letter topic, with its reason, and fails it. */
  private void deadLetter(String value, JsonNode req, String reason) {
    String requestId = req.path("requestId").asText();
    try {
      ProducerRecord<String, String> dead =
          new ProducerRecord<>(cfg.deadLettersTopic(), req.path("tenant").asText(), value);
      dead.headers().add("prefixgate.reason", reason.getBytes(StandardCharsets.UTF_8));
      producer.send(dead).get(30, TimeUnit.SECONDS);
    } catch (Exception e) {
      log.println("worker: could not dead-letter request " + requestId + ": " + e.getMessage());
    }
    fail(req, reason);
  }

  private void fail(JsonNode req, String reason) {
    log.println("worker: request " + req.path("requestId").asText() + " failed: " + reason);
    try {
      status(req, Status.failed(reason));
    } catch (Exception e) {
      log.println("worker: could not publish the failure: " + e.getMessage());
    }
  }

  /** One training-status event's content (deploy/schemas/training-status.schema.json). */
  record Status(
      String state,
      double progress,
      Integer step,
      Double loss,
      String digest,
      String reason,
      JsonNode metrics) {
    static Status running(double progress, Integer step, Double loss) {
      return new Status("running", progress, step, loss, null, null, null);
    }

    static Status failed(String reason) {
      return new Status("failed", 0, null, null, null, reason, null);
    }

    /** Trained and published: live ({@code succeeded}) or kept inactive by the quality gate. */
    static Status finished(JsonNode event) {
      JsonNode metrics = event.path("metrics");
      JsonNode gate = metrics.path("gate");
      boolean live = gate.path("passed").asBoolean(true);
      return new Status(
          live ? "succeeded" : "not_activated",
          100,
          null,
          metrics.path("train_loss").asDouble(),
          event.get("sha256").asText(),
          live ? null : gate.path("reason").asText("the quality gate kept it inactive"),
          metrics.isMissingNode() ? null : metrics);
    }
  }

  /** Publishes a training-status event (synchronously) and returns it. */
  private ObjectNode status(JsonNode req, Status st) throws Exception {
    ObjectNode s = JSON.createObjectNode();
    s.put("requestId", req.path("requestId").asText())
        .put("tenant", req.path("tenant").asText())
        .put("state", st.state())
        .put("progress", st.progress())
        .put("at", Instant.now().toString());
    if (st.step() != null) s.put("step", st.step());
    if (st.loss() != null && Double.isFinite(st.loss())) s.put("loss", st.loss());
    if (st.digest() != null) s.put("digest", st.digest());
    if (st.reason() != null) s.put("reason", st.reason());
    if (st.metrics() != null) s.set("metrics", st.metrics());
    ProducerRecord<String, String> record =
        new ProducerRecord<>(cfg.statusTopic(), s.get("requestId").asText(), s.toString());
    if (st.state().equals("running")) {
      // Progress is best effort: a lost one is replaced by the next, and training must not wait.
      producer.send(record).get(10, TimeUnit.SECONDS);
    } else {
      publish(record); // queued, succeeded, not_activated, failed: the gateway's job row needs it
    }
    return s;
  }

  private static String bar(double pct) {
    int filled = (int) Math.round(pct / 5);
    return "[" + "#".repeat(filled) + ".".repeat(20 - filled) + "]";
  }

  private static void tail(InputStream in, ArrayDeque<String> lines) {
    try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
      for (String line; (line = r.readLine()) != null; ) {
        synchronized (lines) {
          lines.addLast(line);
          if (lines.size() > 20) lines.removeFirst();
        }
      }
    } catch (IOException ignored) {
      // the process ended
    }
  }

  void stop() {
    running = false;
    consumer.wakeup();
  }

  @Override
  public void close() {
    consumer.close(Duration.ofSeconds(5));
    producer.close(Duration.ofSeconds(5));
  }
}
