// Prints the partition the Java producer's built-in partitioner picks for each key read from
// stdin (one UTF-8 key per line), for `numPartitions` given as the first argument. Run with
// the Kafka client jars on the class path: used by core/kafka/murmur2-java.int.test.ts.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;

public class PartitionForKey {
    public static void main(String[] args) throws Exception {
        int n = Integer.parseInt(args[0]);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        StringBuilder out = new StringBuilder();
        String line;
        while ((line = in.readLine()) != null) {
            out.append(BuiltInPartitioner.partitionForKey(line.getBytes(StandardCharsets.UTF_8), n)).append('\n');
        }
        System.out.print(out);
    }
}
