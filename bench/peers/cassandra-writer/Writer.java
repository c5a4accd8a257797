// The Cassandra peer of the sink benchmark (bench/sinks.bench.ts): the DataStax Java driver that
// ships in the cassandra-all distribution's lib/ folder, writing the same rows as the
// fleetstream sink (same table, same prepared INSERT, same number of requests in flight).
// cassandra-stress is not published to Maven Central, so this is the closest "store's own"
// writer the project can fetch: Cassandra's own jars and its own driver.
//
//   java -cp "lib/*:." Writer <host> <port> <keyspace> <devices> <perDevice> <t0> <concurrency>
// prints one JSON line: {"rows":…, "seconds":…, "rows_per_s":…}
import com.datastax.driver.core.*;
import com.google.common.util.concurrent.*;
import java.time.*;
import java.util.*;
import java.util.concurrent.*;

public class Writer {
  public static void main(String[] a) throws Exception {
    String host = a[0];
    int port = Integer.parseInt(a[1]);
    String ks = a[2];
    int devices = Integer.parseInt(a[3]), per = Integer.parseInt(a[4]);
    long t0 = Long.parseLong(a[5]);
    int concurrency = Integer.parseInt(a[6]);
    try (Cluster cluster = Cluster.builder().addContactPoint(host).withPort(port).withoutJMXReporting().build();
        Session s = cluster.connect()) {
      PreparedStatement ps = s.prepare("INSERT INTO " + ks + ".telemetry_by_device_day"
          + " (device_id, day, ts, seq, tenant, received_at, source, metrics, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
      Semaphore inFlight = new Semaphore(concurrency);
      List<Throwable> errors = Collections.synchronizedList(new ArrayList<>());
      long start = System.nanoTime();
      for (int i = 0; i < per; i++) {
        for (int d = 0; d < devices; d++) {
          long ts = t0 + i * 5000L;
          Map<String, String> metrics = new HashMap<>();
          metrics.put("temperature", String.valueOf(20 + (i % 7)));
          metrics.put("humidity", String.valueOf(40 + (d % 9)));
          java.time.LocalDate day = Instant.ofEpochMilli(ts).atZone(ZoneOffset.UTC).toLocalDate();
          BoundStatement b = ps.bind("bench-" + d,
              com.datastax.driver.core.LocalDate.fromYearMonthDay(day.getYear(), day.getMonthValue(), day.getDayOfMonth()),
              new Date(ts), (long) i, null, new Date(ts + 2), "mqtt", metrics, Collections.emptyMap());
          inFlight.acquire();
          Futures.addCallback(s.executeAsync(b), new FutureCallback<ResultSet>() {
            public void onSuccess(ResultSet r) { inFlight.release(); }
            public void onFailure(Throwable t) { errors.add(t); inFlight.release(); }
          }, MoreExecutors.directExecutor());
        }
      }
      inFlight.acquire(concurrency);
      double seconds = (System.nanoTime() - start) / 1e9;
      if (!errors.isEmpty()) throw new RuntimeException(errors.size() + " writes failed", errors.get(0));
      long rows = (long) devices * per;
      System.out.println("{\"rows\":" + rows + ",\"seconds\":" + seconds + ",\"rows_per_s\":" + (rows / seconds) + "}");
    }
  }
}
