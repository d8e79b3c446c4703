/* cmd_eval.c - `simile eval`. */
#include "cli.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "simile.h"

/* ------------------------------------------------------------------ eval */
int cmd_eval(int argc, char **argv)
{
    opt o[] = {{"model", "PATH", "checkpoint written by 'simile train' (required)", NULL},
               {"data", "SPEC", "data set (default fashion-mnist): test split evaluated, train as 1-NN reference", NULL},
               {"classes", "LIST", "evaluate on these classes only (e.g. 6-9, unseen in training)", NULL},
               {"json", NULL, "print one JSON object instead of text", NULL},
               {"threads", "T", "threads (default: all cores)", NULL},
               {NULL, NULL, NULL, NULL}};
    prog_cmd = "simile eval";
    parse(argc, argv, 2, o, "simile eval --model M --data fashion-mnist [--json]",
          "Evaluates a model on the test split: head accuracy, 1-NN accuracy test->train, and\n"
          "leave-one-out retrieval on the test split (precision@1, recall@1/2/4/8, R-precision, MAP@R).");
    set_threads(o);
    if (!get(o, "model", NULL)) die_usage("--model is required");
    sm_err err = {0};
    sm_model *m = NULL;
    if (sm_model_load(&m, get(o, "model", NULL), &err)) die(&err, NULL);
    sm_dataset train = {0}, test = {0};
    if (sm_dataset_open(get(o, "data", "fashion-mnist"), &train, &test, &err)) die(&err, NULL);
    subset(&train, get(o, "classes", NULL), "--classes");
    subset(&test, get(o, "classes", NULL), "--classes");
    zoo_fit_data(m, &train);   /* a 32-px ResNet on Fashion-MNIST: resized as in training */
    zoo_fit_data(m, &test);
    int64_t d = sm_model_dim(m);
    float *etr = malloc(sizeof(float) * (size_t)(train.n * d + 1));
    float *ete = malloc(sizeof(float) * (size_t)(test.n * d + 1));
    if (!etr || !ete) { snprintf(err.msg, sizeof err.msg, "out of memory"); die(&err, NULL); }
    double head_acc = -1;
    sm_retrieval_metrics loo, knn;
    bool head_ok = sm_model_head(m) && test.n_classes <= sm_model_classes(m) && !get(o, "classes", NULL);
    if ((head_ok && sm_eval_head_accuracy(m, &test, &head_acc, &err)) ||
        sm_embed_dataset(m, &train, etr, &err) || sm_embed_dataset(m, &test, ete, &err) ||
        sm_eval_retrieval(&loo, ete, test.labels, test.n, ete, test.labels, test.n, d, true, &err) ||
        sm_eval_retrieval(&knn, ete, test.labels, test.n, etr, train.labels, train.n, d, false, &err))
        die(&err, NULL);
    if (get(o, "json", NULL)) {
        char hbuf[32] = "null";
        if (head_ok) snprintf(hbuf, sizeof hbuf, "%.6f", head_acc);
        printf("{\"head_accuracy\": %s, \"knn_accuracy\": %.6f, \"precision_at_1\": %.6f, "
               "\"recall_at_1\": %.6f, \"recall_at_2\": %.6f, \"recall_at_4\": %.6f, \"recall_at_8\": %.6f, "
               "\"r_precision\": %.6f, \"mean_average_precision_at_r\": %.6f, \"n_test\": %lld, \"n_train\": %lld}\n",
               hbuf, knn.knn_accuracy, loo.precision_at_1, loo.recall_at_k[0],
               loo.recall_at_k[1], loo.recall_at_k[2], loo.recall_at_k[3], loo.r_precision, loo.map_at_r,
               (long long)test.n, (long long)train.n);
    } else {
        printf("model %s: %lld-d embeddings, test %lld images, train %lld\n", get(o, "model", NULL),
               (long long)d, (long long)test.n, (long long)train.n);
        if (head_ok) printf("  head accuracy            %.4f\n", head_acc);
        printf("  1-NN accuracy test->train %.4f\n", knn.knn_accuracy);
        printf("  precision@1              %.4f\n", loo.precision_at_1);
        printf("  recall@1/2/4/8           %.4f %.4f %.4f %.4f\n", loo.recall_at_k[0], loo.recall_at_k[1],
               loo.recall_at_k[2], loo.recall_at_k[3]);
        printf("  R-precision              %.4f\n", loo.r_precision);
        printf("  MAP@R                    %.4f\n", loo.map_at_r);
    }
    free(etr);
    free(ete);
    sm_dataset_free(&train);
    sm_dataset_free(&test);
    sm_model_free(m);
    return 0;
}
