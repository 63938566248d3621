# Sourced by the device scripts, on the device machine (CUDA 13 toolkit and driver, no JDK), from the
# repo root with .device/ carried (scripts/device/bundle.sh): unpacks the runtime into $W, puts
# the CUDA libraries the JavaCPP bindings link against on LD_LIBRARY_PATH, and defines JAVA, FLAGS,
# CP (with the test classes) and EPIC (the CLI).
W=/tmp/epic-device
# unpacked again when the bundle changed: a warm machine keeps /tmp between calls
sum=$(sha256sum .device/epic-device.tar.xz | cut -d' ' -f1)
if [ "$(cat $W/bundle.sha256 2>/dev/null)" != "$sum" ]; then
  rm -rf $W; mkdir -p $W
  xz -dc .device/epic-device.tar.xz | tar xf - -C $W
  echo "$sum" > $W/bundle.sha256
fi
JAVA=$W/jre/bin/java
for lib in libcuda.so.1 libcudart.so.13 libnvrtc.so.13 libnvrtc-builtins.so.13 libcublas.so.13 libcublasLt.so.13; do
  p=$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')
  [ -n "$p" ] || p=$(find /usr/local/cuda*/ /usr/local/nvidia /usr/lib/x86_64-linux-gnu /opt -name "$lib*" 2>/dev/null | head -1)
  echo "$lib: ${p:-MISSING}"
done > $W/libs.txt
libdirs=$(grep -v MISSING $W/libs.txt | awk '{print $2}' | xargs -n1 dirname | sort -u | paste -sd:)
export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
FLAGS=(--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xss4m -XX:+UseParallelGC)
CP="$W/test/native:$W/test/model:$W/test/expert-worker:$W/lib/*"
EPIC=($JAVA "${FLAGS[@]}" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$W/lib/*" dev.epic.cli.Main)
