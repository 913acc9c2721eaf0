import os
os.environ["OPENBLAS_NUM_THREADS"]="1"
import sys, json, numpy as np
sys.path.insert(0,"tools")
from bench_serving import make_queries
from modelverse.store.directory import DirectoryStore
from modelverse.core.reference import ExactSearch, Method, QueryPart
from modelverse.core.scores import normalized_means
store=DirectoryStore.open(sys.argv[1]); col=store.collection()
means=np.asarray(col.means,np.float64); c=col.compressed
D=np.asarray(c.diag,np.float32).astype(np.float64)
lamsum=np.zeros(len(col))
for s in range(0,len(col),8192):
    lamsum[s:s+8192]=(np.asarray(c.factor[s:s+8192],np.float32)**2).sum((1,2))
s2=D.mean(1)+c.eps; logdet=np.asarray(c.logdet); mu2=(means**2).sum(1); d=means.shape[1]
Q,_=make_queries(col, int(sys.argv[2]), 1)
ex=ExactSearch(col); cosk=normalized_means(means)
out={}
for method in (Method.GAUSSIAN, Method.MGF):
    rec={"cosine":{}, "lifted":{}}
    for q in Q.astype(np.float64):
        truth=set(h.id for h in ex.search([QueryPart(q)],method,10))
        if method is Method.GAUSSIAN:
            lifted=(means@q)/s2 - (1+mu2)/(2*s2) - 0.5*logdet
        else:  # [q, q^2, 1] . [tau mu, tau^2/2 D, tau^2/2 tr(WW^T)/d]
            lifted=100*(means@q) + 5000*(D@(q*q)) + 5000*lamsum/d
        for name,score in (("cosine",cosk@q),("lifted",lifted)):
            order=np.argpartition(-score, 1600)[:1600]; order=order[np.argsort(-score[order])]
            for K in (100,200,400,800,1600):
                rec[name].setdefault(K,[]).append(len(truth&set(col.ids[order[:K]]))/10)
    out[method.value]={nm:{K:round(float(np.mean(v)),3) for K,v in dd.items()} for nm,dd in rec.items()}
    print(method.value, out[method.value], flush=True)
json.dump(out, open(sys.argv[3],"w"), indent=1)
