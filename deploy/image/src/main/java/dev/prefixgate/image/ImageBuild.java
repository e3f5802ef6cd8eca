package dev.prefixgate.image;

import com.google.cloud.tools.jib.api.Containerizer;
import com.google.cloud.tools.jib.api.Jib;
import com.google.cloud.tools.jib.api.JibContainer;
import com.google.cloud.tools.jib.api.JibContainerBuilder;
import com.google.cloud.tools.jib.api.LogEvent;
import com.google.cloud.tools.jib.api.TarImage;
import com.google.cloud.tools.jib.api.buildplan.AbsoluteUnixPath;
import com.google.cloud.tools.jib.api.buildplan.FileEntriesLayer;
import com.google.cloud.tools.jib.api.buildplan.ImageFormat;
import com.google.cloud.tools.jib.api.buildplan.Port;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Writes the gateway or the trainer-worker image as an OCI image tarball with jib-core, on top of a
 * base tarball from {@code deploy/image/base-image} ({@code tar://}): no registry, no Docker
 * daemon, nothing pulled. Layers go from the least to the most often changed, as Quarkus's own Jib
 * build lays out a fast-jar, so a rebuild after a code change rewrites only the last layers.
 *
 * <p>The image's contract is what {@code deploy/k8s} expects and {@code tests/test_images.py}
 * checks: user 185 (the manifests' {@code runAsUser}), the model directory {@value #MODEL_DIR} a
 * volume named by {@code PREFIXGATE_MODEL_DIR}, and for the gateway the HTTP and management ports.
 * Creation time and file times are fixed, so the same inputs give the same image digest.
 *
 * <pre>
 * gateway --base TAR --app target/quarkus-app --out OUT.tar --name prefixgate/gateway:0.1.0
 * worker  --base TAR --worker trainer/target --python STAGED_PYTHON --site-packages DIR|none
 *         --out OUT.tar --name prefixgate/trainer-worker:0.1.0
 * </pre>
 */
public final class ImageBuild {
  static final String MODEL_DIR = "/models/bloom";
  static final String USER = "185";
  static final String HOME = "/home/jboss";
  static final String APP = "/deployments";
  static final String WORKER = "/opt/prefixgate/worker";
  static final String TRAINER = "/opt/prefixgate/trainer/python";
  static final String VENV = "/opt/prefixgate/venv";
  static final String SITE_PACKAGES = VENV + "/lib/python3.11/site-packages";
  static final String WORK_DIR = "/work";

  private ImageBuild() {}

  public static void main(String[] args) throws Exception {
    if (args.length == 0 || !(args[0].equals("gateway") || args[0].equals("worker"))) {
      throw new IllegalArgumentException("first argument must be gateway or worker");
    }
    Map<String, String> opts = options(args);
    String base = require(opts, "base");
    Path out = Path.of(require(opts, "out"));
    String name = require(opts, "name");
    JibContainerBuilder image =
        args[0].equals("gateway")
            ? gateway(base, Path.of(require(opts, "app")), opts)
            : worker(
                base,
                Path.of(require(opts, "worker")),
                Path.of(require(opts, "python")),
                require(opts, "site-packages"));
    image
        .setFormat(ImageFormat.OCI)
        .setCreationTime(Instant.EPOCH)
        .setUser(USER)
        .addLabel("org.opencontainers.image.title", name);

    Path cache = out.resolveSibling(".jib-cache");
    Containerizer to =
        Containerizer.to(TarImage.at(out).named(name))
            .setOfflineMode(true)
            .setBaseImageLayersCache(cache.resolve("base"))
            .setApplicationLayersCache(cache.resolve("app"))
            .setToolName("prefixgate-image-build")
            .addEventHandler(
                LogEvent.class,
                e -> {
                  if (e.getLevel().compareTo(LogEvent.Level.LIFECYCLE) <= 0) {
                    System.out.println("jib: " + e.getMessage());
                  }
                });
    Files.createDirectories(out.toAbsolutePath().getParent());
    JibContainer built = image.containerize(to);
    System.out.println(name + " -> " + out + " (" + built.getDigest() + ")");
  }

  /**
   * The Quarkus fast-jar: boot libraries, the other libraries, {@code quarkus-run.jar}, the
   * application, Quarkus's generated classes. Started as {@code java -jar}, with the JVM flag that
   * Quarkus's container-image extensions pass by default.
   */
  static JibContainerBuilder gateway(String base, Path app, Map<String, String> opts)
      throws Exception {
    requireDir(app.resolve("lib/boot"), "the fast-jar (./mvnw package -DskipTests)");
    AbsoluteUnixPath deployments = AbsoluteUnixPath.get(APP);
    JibContainerBuilder b = Jib.from(base);
    b.addFileEntriesLayer(
        tree("fast-jar-boot-libs", app.resolve("lib/boot"), deployments.resolve("lib")));
    b.addFileEntriesLayer(
        tree("fast-jar-libs", app.resolve("lib/main"), deployments.resolve("lib")));
    b.addFileEntriesLayer(
        FileEntriesLayer.builder()
            .setName("fast-jar-run")
            .addEntry(app.resolve("quarkus-run.jar"), deployments.resolve("quarkus-run.jar"))
            .build());
    b.addFileEntriesLayer(tree("fast-jar-app", app.resolve("app"), deployments));
    b.addFileEntriesLayer(tree("fast-jar-quarkus", app.resolve("quarkus"), deployments));
    int http = Integer.parseInt(opts.getOrDefault("http-port", "8080"));
    int management = Integer.parseInt(opts.getOrDefault("management-port", "9000"));
    Map<String, String> env = new LinkedHashMap<>();
    env.put("PREFIXGATE_MODEL_DIR", MODEL_DIR);
    // DJL never downloads (it would on a CUDA host); both native libraries unpack into /tmp, the
    // one path a read-only root leaves writable.
    env.put("DJL_OFFLINE", "true");
    env.put("DJL_CACHE_DIR", "/tmp/djl");
    // ONNX Runtime 1.29's telemetry would upload over HTTPS and, without /etc/machine-id, runs
    // `sh -c "blkid; hostname"`: with no shell in the image that crashed the JVM (SIGSEGV in
    // fclose, OrtEnvironment.createHandle), found by tests/test_images.py.
    env.put("ORT_DISABLE_TELEMETRY", "1");
    env.put("JAVA_TOOL_OPTIONS", "-XX:MaxRAMPercentage=75 -Djava.io.tmpdir=/tmp");
    return b.setEntrypoint(
            List.of(
                "/opt/java/bin/java",
                "-Djava.util.logging.manager=org.jboss.logmanager.LogManager",
                "-jar",
                APP + "/quarkus-run.jar"))
        .setProgramArguments(List.of())
        .setExposedPorts(Set.of(Port.tcp(http), Port.tcp(management)))
        .setVolumes(Set.of(AbsoluteUnixPath.get(MODEL_DIR)))
        .setEnvironment(env)
        .setWorkingDirectory(AbsoluteUnixPath.get(HOME))
        .addLabel("dev.prefixgate.ports", "http=" + http + ",management=" + management);
  }

  /**
   * The worker jar and its libraries, the Python job's sources ({@code --python}: a staged copy of
   * {@code trainer/python} with its byte-code, deploy/image/build), and the job's packages
   * installed into the base image's virtual environment ({@code none}: left out, for a quick
   * structural build; such a worker cannot train).
   */
  static JibContainerBuilder worker(String base, Path target, Path python, String sitePackages)
      throws Exception {
    requireDir(target.resolve("lib"), "the worker jar (cd trainer && ../mvnw package)");
    requireDir(python.resolve("prefixgate_trainer"), "trainer/python");
    JibContainerBuilder b = Jib.from(base);
    boolean withPackages = !sitePackages.equals("none");
    if (withPackages) {
      Path site = Path.of(sitePackages);
      requireDir(site, "the job's packages (pip install --target)");
      b.addFileEntriesLayer(children("python-packages", site, AbsoluteUnixPath.get(SITE_PACKAGES)));
    }
    AbsoluteUnixPath worker = AbsoluteUnixPath.get(WORKER);
    b.addFileEntriesLayer(tree("worker-libs", target.resolve("lib"), worker));
    b.addFileEntriesLayer(children("trainer-python", python, AbsoluteUnixPath.get(TRAINER)));
    b.addFileEntriesLayer(
        FileEntriesLayer.builder()
            .setName("worker-jar")
            .addEntry(
                target.resolve("prefixgate-trainer-worker.jar"),
                worker.resolve("prefixgate-trainer-worker.jar"))
            .build());
    Map<String, String> env = new LinkedHashMap<>();
    env.put("PREFIXGATE_MODEL_DIR", MODEL_DIR);
    env.put("PREFIXGATE_PYTHON", VENV + "/bin/python");
    env.put("PREFIXGATE_TRAINER_DIR", TRAINER);
    env.put("PREFIXGATE_WORK_DIR", WORK_DIR);
    // The sources are compiled into the image (unchecked-hash .pyc): nothing to write at run time.
    env.put("PYTHONDONTWRITEBYTECODE", "1");
    env.put("JAVA_TOOL_OPTIONS", "-Djava.io.tmpdir=/tmp");
    return b.setEntrypoint(
            List.of("/opt/java/bin/java", "-jar", WORKER + "/prefixgate-trainer-worker.jar"))
        .setProgramArguments(List.of())
        .setExposedPorts(Set.of())
        .setVolumes(Set.of(AbsoluteUnixPath.get(MODEL_DIR), AbsoluteUnixPath.get(WORK_DIR)))
        .setEnvironment(env)
        .setWorkingDirectory(AbsoluteUnixPath.get(HOME))
        .addLabel("dev.prefixgate.python-packages", withPackages ? "installed" : "none");
  }

  /** {@code dir} as {@code into/<dir's name>/...}. */
  static FileEntriesLayer tree(String name, Path dir, AbsoluteUnixPath into) throws IOException {
    return FileEntriesLayer.builder()
        .setName(name)
        .addEntryRecursive(dir, into.resolve(dir.getFileName().toString()))
        .build();
  }

  /** The entries of {@code dir}, sorted, under {@code into} (which the base image provides). */
  static FileEntriesLayer children(String name, Path dir, AbsoluteUnixPath into)
      throws IOException {
    FileEntriesLayer.Builder layer = FileEntriesLayer.builder().setName(name);
    List<Path> entries;
    try (Stream<Path> list = Files.list(dir)) {
      entries = new ArrayList<>(list.sorted().toList());
    }
    for (Path p : entries) {
      layer.addEntryRecursive(p, into.resolve(p.getFileName().toString()));
    }
    return layer.build();
  }

  static Map<String, String> options(String[] args) {
    Map<String, String> opts = new HashMap<>();
    for (int i = 1; i < args.length; i += 2) {
      if (!args[i].startsWith("--") || i + 1 >= args.length) {
        throw new IllegalArgumentException("expected --option value, got " + args[i]);
      }
      opts.put(args[i].substring(2), args[i + 1]);
    }
    return opts;
  }

  static String require(Map<String, String> opts, String name) {
    String v = opts.get(name);
    if (v == null) {
      throw new IllegalArgumentException("missing --" + name);
    }
    return v;
  }

  static void requireDir(Path dir, String what) {
    if (!Files.isDirectory(dir)) {
      throw new IllegalArgumentException(dir + " does not exist: build " + what + " first");
    }
  }
}
