package dev.prefixgate.messaging;

import java.time.Duration;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.errors.WakeupException;

/**
 * The gateway's one way to follow a topic: a daemon thread that owns its consumer, polls it, hands
 * each record to a handler, survives a failing record or a broker outage (logged, then the next
 * poll), and stops on {@link #close()} (wakeup, join, close). The consumer is used on that thread
 * only; other threads may call {@link #wakeup()} to interrupt a poll.
 */
public final class KafkaLoop<K, V> implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(KafkaLoop.class.getName());

  /** Handles one record; an exception is logged with the record's position and skipped. */
  public interface Handler<K, V> {
    void handle(ConsumerRecord<K, V> record) throws Exception;
  }

  /** Runs on the loop's thread: before the first poll, and around each poll. */
  public interface Hooks {
    default void onStart() {}

    default void beforePoll() {}

    default void afterPoll() {}
  }

  private final String name;
  private final KafkaConsumer<K, V> consumer;
  private final Handler<K, V> handler;
  private final Hooks hooks;
  private final Thread thread;
  private volatile boolean running = true;

  private KafkaLoop(String name, KafkaConsumer<K, V> consumer, Handler<K, V> handler, Hooks hooks) {
    this.name = name;
    this.consumer = consumer;
    this.handler = handler;
    this.hooks = hooks;
    this.thread = new Thread(this::run, name);
    this.thread.setDaemon(true);
  }

  /** Starts following with an already subscribed (or assigned) consumer. */
  public static <K, V> KafkaLoop<K, V> start(
      String name, KafkaConsumer<K, V> consumer, Handler<K, V> handler, Hooks hooks) {
    KafkaLoop<K, V> loop = new KafkaLoop<>(name, consumer, handler, hooks);
    loop.thread.start();
    return loop;
  }

  private void run() {
    try {
      hooks.onStart();
    } catch (RuntimeException e) {
      LOG.log(Level.WARNING, name + ": start-up step failed; following anyway", e);
    }
    while (running) {
      try {
        hooks.beforePoll();
        for (ConsumerRecord<K, V> r : consumer.poll(Duration.ofMillis(500))) {
          try {
            handler.handle(r);
          } catch (WakeupException e) {
            throw e;
          } catch (Exception e) {
            LOG.log(
                Level.WARNING,
                name + ": record " + r.topic() + "/" + r.partition() + "@" + r.offset() + " failed",
                e);
          }
        }
        hooks.afterPoll();
      } catch (WakeupException e) {
        if (!running) break;
      } catch (Exception e) {
        LOG.log(Level.WARNING, name + ": loop error; continuing", e);
        pause();
      }
    }
    consumer.close(Duration.ofSeconds(5));
  }

  private static void pause() {
    try {
      Thread.sleep(1000); // a broker that is away: do not spin
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Interrupts a poll in progress (the loop then runs its hooks again). */
  public void wakeup() {
    consumer.wakeup();
  }

  public boolean running() {
    return running;
  }

  @Override
  public void close() {
    if (!running) return;
    running = false;
    consumer.wakeup();
    try {
      thread.join(10_000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
