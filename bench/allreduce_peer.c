/* Open MPI's own all-reduce, timed the way `bioforge dist bench` times it: float32 sum, in place, a barrier before
 * each call, the slowest rank's mean time. The peer for docs/benchmarks.md (build: mpicc -O2 allreduce_peer.c). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int repeats = 20, warmup = 3;
    long sizes[] = {8L << 10, 1L << 20, 16L << 20, 64L << 20};
    for (int s = 0; s < 4; s++) {
        long count = sizes[s] / 4;
        float *buffer = malloc(count * sizeof(float));
        for (long i = 0; i < count; i++) buffer[i] = 1.0f;
        double total = 0;
        for (int i = 0; i < warmup + repeats; i++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double start = MPI_Wtime();
            MPI_Allreduce(MPI_IN_PLACE, buffer, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            if (i >= warmup) total += MPI_Wtime() - start;
        }
        double mean = total / repeats, slowest;
        MPI_Allreduce(&mean, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        double algbw = count * 4.0 / slowest / 1e9;
        if (rank == 0)
            printf("{\"benchmark\":\"allreduce\",\"backend\":\"openmpi-c\",\"ranks\":%d,\"bytes\":%ld,\"microseconds\":%.1f,\"algbw_GBps\":%.3f,\"busbw_GBps\":%.3f}\n",
                   size, count * 4, slowest * 1e6, algbw, algbw * 2 * (size - 1) / size);
        free(buffer);
    }
    MPI_Finalize();
    return 0;
}
