// One OpenSearch node with the modules the stack needs, started from the jars Maven fetched
// (infra/maven/opensearch/pom.xml). Those jars carry no plugin descriptors, so the modules cannot be
// laid out as in the distribution; the node gets their classes instead, as OpenSearch's test
// framework (MockNode) starts nodes. `shopstream setup` compiles this file with javac.
//
//   java -cp <classes>:<jars>/* ShopstreamNode <config dir holding opensearch.yml>

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.index.reindex.ReindexPlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.transport.Netty4Plugin;

public final class ShopstreamNode extends Node {
    private ShopstreamNode(Environment environment) {
        super(
            environment,
            List.of(Netty4Plugin.class, CommonAnalysisPlugin.class, PainlessPlugin.class, MapperExtrasPlugin.class, ReindexPlugin.class),
            true
        );
    }

    public static void main(String[] args) throws Exception {
        Path config = Path.of(args[0]).toAbsolutePath();
        Settings home = Settings.builder().put("path.home", config.getParent().toString()).build();
        // reads <config>/opensearch.yml over `home`
        Environment environment = InternalSettingsPreparer.prepareEnvironment(home, Map.of(), config, () -> "shopstream");
        Node node = new ShopstreamNode(environment);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }));
        node.start();
        stopped.await(); // the node's threads are daemons: keep the JVM up until SIGTERM
    }
}
