// The peer of fleetstream's rollup job in bench/jobs.bench.ts: the same 1-minute tumbling
// rollup (count, min, max, sum, avg, first, last per device and metric, final results only) as
// a Kafka Streams application with exactly-once (v2) processing. Input and output are Avro in
// the Confluent wire format, like fleetstream's (schemas/telemetry.avsc, schemas/rollup.avsc).
//
// Run: java -cp 'jars/*' RollupApp.java <bootstrap> <applicationId> <inputTopic> <outputTopic> <graceMs> <stateDir>
// (bench/peers/kafka-streams/run.sh fetches the jars from Maven Central and runs it.)

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.state.WindowStore;

public class RollupApp {
  static final int TELEMETRY_SCHEMA_ID = 1;
  static final int ROLLUP_SCHEMA_ID = 2;

  /** One metric's aggregate in one window. */
  static final class Agg {
    long count;
    double min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY, sum;
    long firstTs = Long.MAX_VALUE, lastTs = Long.MIN_VALUE;
    double first, last;

    void add(long ts, double v) {
      count++;
      min = Math.min(min, v);
      max = Math.max(max, v);
      sum += v;
      if (ts < firstTs) { firstTs = ts; first = v; }
      if (ts >= lastTs) { lastTs = ts; last = v; }
    }
  }

  /** A device's window: one aggregate per metric (keyed by device, so no repartition topic). */
  static final class DeviceAgg {
    final Map<String, Agg> metrics = new HashMap<>();
  }

  static final class DeviceAggSerde implements Serde<DeviceAgg> {
    public Serializer<DeviceAgg> serializer() {
      return (topic, d) -> {
        int size = 4;
        List<byte[]> names = new ArrayList<>();
        for (String k : d.metrics.keySet()) {
          byte[] b = k.getBytes(java.nio.charset.StandardCharsets.UTF_8);
          names.add(b);
          size += 4 + b.length + 8 * 8;
        }
        ByteBuffer buf = ByteBuffer.allocate(size);
        buf.putInt(d.metrics.size());
        int i = 0;
        for (Agg a : d.metrics.values()) {
          byte[] b = names.get(i++);
          buf.putInt(b.length).put(b);
          buf.putLong(a.count).putDouble(a.min).putDouble(a.max).putDouble(a.sum);
          buf.putLong(a.firstTs).putDouble(a.first).putLong(a.lastTs).putDouble(a.last);
        }
        return buf.array();
      };
    }

    public Deserializer<DeviceAgg> deserializer() {
      return (topic, bytes) -> {
        DeviceAgg d = new DeviceAgg();
        if (bytes == null) return d;
        ByteBuffer buf = ByteBuffer.wrap(bytes);
        int n = buf.getInt();
        for (int i = 0; i < n; i++) {
          byte[] b = new byte[buf.getInt()];
          buf.get(b);
          Agg a = new Agg();
          a.count = buf.getLong();
          a.min = buf.getDouble();
          a.max = buf.getDouble();
          a.sum = buf.getDouble();
          a.firstTs = buf.getLong();
          a.first = buf.getDouble();
          a.lastTs = buf.getLong();
          a.last = buf.getDouble();
          d.metrics.put(new String(b, java.nio.charset.StandardCharsets.UTF_8), a);
        }
        return d;
      };
    }
  }

  public static void main(String[] args) throws Exception {
    String bootstrap = args[0], appId = args[1], input = args[2], output = args[3];
    long graceMs = Long.parseLong(args[4]);
    String stateDir = args[5];
    String schemas = System.getProperty("fleetstream.schemas", "schemas");
    Schema telemetrySchema = new Schema.Parser().parse(new File(schemas, "telemetry.avsc"));
    Schema rollupSchema = new Schema.Parser().parse(new File(schemas, "rollup.avsc"));
    GenericDatumReader<GenericRecord> reader = new GenericDatumReader<>(telemetrySchema);
    GenericDatumWriter<GenericRecord> writer = new GenericDatumWriter<>(rollupSchema);
    Schema kindSchema = rollupSchema.getField("kind").schema();

    StreamsBuilder b = new StreamsBuilder();
    b.stream(input, Consumed.with(Serdes.String(), Serdes.ByteArray()))
        .mapValues(v -> {
          // Confluent wire format: magic byte, 4-byte schema id, Avro body.
          BinaryDecoder dec = DecoderFactory.get().binaryDecoder(v, 5, v.length - 5, null);
          try {
            return reader.read(null, dec);
          } catch (Exception e) {
            return null;
          }
        })
        .filter((k, r) -> r != null)
        .groupByKey(Grouped.with(Serdes.String(), null))
        .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMinutes(1), Duration.ofMillis(graceMs)))
        .aggregate(
            DeviceAgg::new,
            (k, r, agg) -> {
              long ts = (Long) r.get("ts");
              @SuppressWarnings("unchecked")
              Map<Object, Object> m = (Map<Object, Object>) r.get("metrics");
              for (Map.Entry<Object, Object> e : m.entrySet()) {
                if (!(e.getValue() instanceof Double)) continue;
                agg.metrics.computeIfAbsent(e.getKey().toString(), x -> new Agg()).add(ts, (Double) e.getValue());
              }
              return agg;
            },
            Materialized.<String, DeviceAgg, WindowStore<Bytes, byte[]>>with(Serdes.String(), new DeviceAggSerde()))
        .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
        .toStream()
        .flatMap((Windowed<String> w, DeviceAgg d) -> {
          List<KeyValue<String, byte[]>> out = new ArrayList<>();
          for (Map.Entry<String, Agg> e : d.metrics.entrySet()) {
            Agg a = e.getValue();
            GenericRecord r = new GenericData.Record(rollupSchema);
            r.put("deviceId", w.key());
            r.put("metric", e.getKey());
            r.put("windowStart", w.window().start());
            r.put("windowEnd", w.window().end());
            r.put("count", a.count);
            r.put("min", a.min);
            r.put("max", a.max);
            r.put("sum", a.sum);
            r.put("avg", a.sum / a.count);
            r.put("first", a.first);
            r.put("last", a.last);
            r.put("kind", new GenericData.EnumSymbol(kindSchema, "final"));
            ByteArrayOutputStream bytes = new ByteArrayOutputStream(128);
            bytes.write(0);
            bytes.write(ByteBuffer.allocate(4).putInt(ROLLUP_SCHEMA_ID).array(), 0, 4);
            BinaryEncoder enc = EncoderFactory.get().binaryEncoder(bytes, null);
            try {
              writer.write(r, enc);
              enc.flush();
            } catch (Exception ex) {
              throw new RuntimeException(ex);
            }
            out.add(KeyValue.pair(w.key(), bytes.toByteArray()));
          }
          return out;
        })
        .to(output, Produced.with(Serdes.String(), Serdes.ByteArray()));

    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
    p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
    p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");

    KafkaStreams streams = new KafkaStreams(b.build(), p);
    CountDownLatch done = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close(Duration.ofSeconds(30));
      done.countDown();
    }));
    streams.setStateListener((next, prev) -> System.out.println("{\"event\":\"state\",\"state\":\"" + next + "\"}"));
    streams.start();
    done.await();
  }
}
