package dev.prefixgate;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.util.Optional;

/** Every Prefixgate setting, under {@code prefixgate.*} (env: {@code PREFIXGATE_*}). */
@ConfigMapping(prefix = "prefixgate")
public interface PrefixgateConfig {

  /** The served model. */
  Model model();

  /** Batching, admission and ONNX Runtime threads. */
  EngineSettings engine();

  /** Administration. */
  Admin admin();

  /** The demo tenants and adapters seeded from {@code trainer/fixtures}. */
  Demo demo();

  /** The prefix cache. */
  Cache cache();

  /** Kafka: adapter distribution, dead letters, retrain requests. */
  Kafka kafka();

  /** What trainer workers may do here. */
  Trainer trainer();

  /** The in-memory serving directory (tenants, keys, servable versions). */
  Registry registry();

  interface Registry {
    /**
     * How often each replica checks the registry's change counter: a revocation or activation made
     * anywhere is honoured everywhere within about this long.
     */
    @WithDefault("250")
    long refreshMillis();

    /**
     * How long a replica that cannot reach the database keeps serving from its last snapshot. No
     * change can be committed while the database is down for every replica; this bounds the case
     * where only this replica lost it. After it, /v1 answers 503.
     */
    @WithDefault("300")
    long maxStaleSeconds();
  }

  interface Trainer {
    /**
     * The trainer workers' credential ({@code PREFIXGATE_TRAINER_KEY}): it reads a tenant's data
     * set at {@code /trainer/tenants/{id}/datasets/{dataset}} and nothing else. Without one, that
     * route answers 503.
     */
    Optional<String> key();
  }

  interface Kafka {
    /** Consume adapter events (and replay the compacted topic at start). */
    @WithDefault("false")
    boolean enabled();

    /** Broker addresses. */
    @WithDefault("127.0.0.1:9092")
    String bootstrapServers();

    /** Compacted topic of adapter events, key {@code tenant/adapter}. */
    @WithDefault("prefixgate.adapters")
    String adaptersTopic();

    /** Rejected records with the reason in headers. */
    @WithDefault("prefixgate.dead-letters")
    String deadLettersTopic();

    /** Retrain requests, key tenant. */
    @WithDefault("prefixgate.retrain-requests")
    String retrainTopic();

    /** Training status events, key request id. */
    @WithDefault("prefixgate.training-status")
    String statusTopic();

    /** Largest inline adapter (safetensors bytes); the topics' max.message.bytes is set to fit. */
    @WithDefault("16777216")
    int maxAdapterBytes();

    /**
     * {@code SASL_SSL} (the default), {@code SASL_PLAINTEXT} (the local broker), {@code SSL} (mTLS,
     * with the keystore settings) or {@code PLAINTEXT} (only for a broker nobody else can reach).
     */
    @WithDefault("SASL_SSL")
    String securityProtocol();

    /** {@code SCRAM-SHA-512}, {@code SCRAM-SHA-256} or {@code PLAIN}. */
    @WithDefault("SCRAM-SHA-512")
    String saslMechanism();

    /** The gateway's Kafka principal (needed for SASL). */
    Optional<String> username();

    /** Its password: from the environment ({@code PREFIXGATE_KAFKA_PASSWORD}) or a secret. */
    Optional<String> password();

    /** Trust store (PEM or PKCS12) for a broker certificate no public CA signed. */
    Optional<String> sslTruststoreLocation();

    Optional<String> sslTruststorePassword();

    /** Client certificate for mTLS ({@code SSL}). */
    Optional<String> sslKeystoreLocation();

    Optional<String> sslKeystorePassword();
  }

  interface Model {
    /**
     * Model directory: {@code model.onnx} (+ external data), {@code config.json}, {@code
     * tokenizer.json}. Default: the bundled demo model.
     */
    @WithDefault("trainer/fixtures/tiny-bloom")
    String dir();

    /** Name reported as the base model in {@code /v1/models}. */
    @WithDefault("base")
    String baseName();

    /**
     * What the registry records as an adapter's base model, with the model's fingerprint (default:
     * the model directory's folder name; never a path).
     */
    Optional<String> name();
  }

  interface EngineSettings {
    /** ONNX Runtime intra-op threads; 0 = one per core. */
    @WithDefault("0")
    int intraOpThreads();

    /** Let ORT threads spin between ops (faster on a dedicated machine, harmful on shared CPUs). */
    @WithDefault("false")
    boolean allowSpinning();

    /** Use the CUDA provider when the gpu build is installed; falls back to CPU with a log line. */
    @WithDefault("false")
    boolean cuda();

    /** Sequences decoded together in one step. */
    @WithDefault("16")
    int maxBatchRows();

    /** KV tokens reserved by running rows (prefix + prompt + max new tokens each). */
    @WithDefault("32768")
    int maxBatchTokens();

    /** Padded prompt tokens per prefill run. */
    @WithDefault("2048")
    int maxPrefillTokens();

    /** Requests waiting for a row; beyond this the API answers 429. */
    @WithDefault("256")
    int maxQueue();

    /** Limit on prefix + prompt + max_tokens for one request. */
    @WithDefault("2048")
    int maxContext();

    /** Bytes of engine buffers (KV, prefill, logits); 0 = 80% of the JVM's direct-memory limit. */
    @WithDefault("0")
    long memoryBudgetBytes();

    /** Requests one tenant may have waiting; 0 = max-queue. */
    @WithDefault("0")
    int maxQueuedPerTenant();

    /** Rows one tenant may hold; 0 = max-batch-rows. */
    @WithDefault("0")
    int maxRowsPerTenant();

    /** While other tenants wait, no tenant is admitted beyond this fraction of the rows. */
    @WithDefault("0.5")
    double fairShare();

    /** Prompt tokens prefilled between two decode steps while rows decode; 0 = whole prompts. */
    @WithDefault("64")
    int prefillStepTokens();

    /**
     * A prompt column over p earlier tokens counts as 1 + p / this in the step budget, so steps
     * stay flat through a long prompt; 0 = every column counts as one.
     */
    @WithDefault("1280")
    int prefillStepPastTokens();

    /**
     * KV buffers in reserved address space (64-bit Linux), grown without a copy or fresh
     * allocation; false: JVM direct buffers, re-made to grow (also where regions cannot be had).
     */
    @WithDefault("true")
    boolean reservedRegions();

    /** max_tokens when the request does not say. */
    @WithDefault("256")
    int defaultMaxTokens();
  }

  interface Admin {
    /** Admin API key ({@code PREFIXGATE_ADMIN_KEY}); admin endpoints are closed without one. */
    Optional<String> key();

    /** This gateway's address as trainer workers reach it (recorded in retrain requests). */
    @WithDefault("http://127.0.0.1:8080")
    String publicUrl();
  }

  interface Demo {
    /** Seed the demo tenants (acme, globex, initech, xuetang) with fixed, documented keys. */
    @WithDefault("false")
    boolean enabled();

    /** Where the demo adapters live. */
    @WithDefault("trainer/fixtures/adapters")
    String adaptersDir();
  }

  interface Cache {
    /** Bytes of prefix KV kept in memory; least recently used unreferenced entries are evicted. */
    @WithDefault("268435456")
    long maxBytes();

    /** Tenants whose adapters stay cached even when unused (comma-separated ids). */
    Optional<java.util.Set<String>> pinnedTenants();
  }
}
