from ev import *
import sys
from scipy.stats import rankdata
def lcn(x, bs=0.6, ls=3.0, floor=1e-2):
    x=ndi.gaussian_filter(x,(0,bs,bs),mode='nearest')
    m=ndi.gaussian_filter(x,(0,ls,ls),mode='nearest'); dv=x-m
    v=ndi.gaussian_filter(dv*dv,(0,ls,ls),mode='nearest'); return dv/np.sqrt(v+floor)
def rank(x):
    out=np.empty_like(x)
    for k in range(len(x)):
        f=x[k].ravel(); r=rankdata(f)/len(f); out[k]=r.reshape(x[k].shape)
    return out
def nstd(v): return std(v.reshape(len(v),-1))
def cat(*fs): return lambda x: np.concatenate([nstd(f(x)) for f in fs],1)
def grad(x, bs=1.0, ls=3.0, floor=1e-2):
    x=ndi.gaussian_filter(x,(0,bs,bs),mode='nearest')
    gx=ndi.sobel(x,2); gy=ndi.sobel(x,1); m=np.sqrt(ndi.gaussian_filter(gx*gx+gy*gy,(0,ls,ls))+floor)
    return np.concatenate([gx/m,gy/m],axis=1)
ts=[0.95,0.9,0.85,0.8,0.75,0.7]
which=sys.argv[1]
if which=='rank': run('rank blur1', lambda x: ndi.gaussian_filter(rank(x),(0,1,1)), ts)
if which=='ranklcn': run('rank lcn', lambda x: lcn(rank(x),0.6,3,0.05), ts)
if which=='lcnfloor': run('lcn floor 0.05', lambda x: lcn(x,0.6,3,0.05), ts)
if which=='lcnfloor3': run('lcn floor 0.003', lambda x: lcn(x,0.6,3,0.003), ts)
if which=='grad': run('grad floor', lambda x: grad(x,1.0,3,0.5), ts)
if which=='multi': run('lcn3+plain', cat(lambda x: lcn(x), lambda x: ndi.gaussian_filter(x,(0,1,1))), ts)
